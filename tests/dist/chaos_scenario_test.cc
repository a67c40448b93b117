// dist/: chaos scenarios (parsing, errors naming the field, seeded schedules) and reading the
// supervisor's events back for the training report's fault markers.
#include <gtest/gtest.h>

#include <sstream>

#include "core/error.h"
#include "dist/chaos_scenario.h"
#include "train/report_faults.h"

namespace holdfast::dist {
namespace {

using nlohmann::json;

json generated(uint64_t seed) {
  return {{"job", "toy"}, {"workers", 4}, {"steps", 1000}, {"seed", seed},
          {"generator", {{"every_steps", 10}, {"kinds", {{"kill", 2}, {"segv", 1}, {"supervisor-kill", 1}}}}}};
}

std::string error_of(const json& j) {
  try {
    parse_scenario(j, "s.json");
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(ChaosScenario, SameSeedSameScheduleOtherSeedOther) {
  const auto a = make_schedule(parse_scenario(generated(7), "s.json"), 0);
  const auto b = make_schedule(parse_scenario(generated(7), "s.json"), 0);
  const auto c = make_schedule(parse_scenario(generated(8), "s.json"), 0);
  ASSERT_EQ(a.size(), 99u);  // steps 10, 20, ..., 990 (the last 5 steps are kept clear)
  ASSERT_EQ(a.size(), b.size());
  int differ = 0, kills = 0, harness = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].spec(), b[i].spec());
    EXPECT_EQ(a[i].step, int64_t(10 * (i + 1)));
    EXPECT_GE(a[i].rank, 0);
    EXPECT_LT(a[i].rank, 4);
    differ += a[i].spec() != c[i].spec();
    kills += a[i].kind == "kill";
    harness += a[i].side() == FaultSide::kHarness;
  }
  EXPECT_GT(differ, 30);
  EXPECT_GT(kills, 30);  // weight 2 of 4
  EXPECT_LT(kills, 70);
  EXPECT_GT(harness, 5);
}

TEST(ChaosScenario, EverySecondsUsesTheStepTime) {
  json j = generated(1);
  j["generator"] = {{"every_s", 0.5}, {"kinds", {{"stop", 1}}}, {"count", 3}};
  const auto s = make_schedule(parse_scenario(j, "s.json"), 0.01);  // 10 ms per step: every 50 steps
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].step, 50);
  EXPECT_EQ(s[2].step, 150);
  EXPECT_DOUBLE_EQ(s[2].at_s, 1.5);
  EXPECT_EQ(s[1].spec(), fmt::format("stop:{}@100", s[1].rank));
}

TEST(ChaosScenario, ErrorsNameTheField) {
  json j = generated(1);
  j["generator"]["kinds"]["bitflip"] = 1;
  EXPECT_NE(error_of(j).find("s.json: generator.kinds.bitflip: 'bitflip' needs a training job"), std::string::npos)
      << error_of(j);
  j = generated(1);
  j["generator"]["every_s"] = 2;
  EXPECT_NE(error_of(j).find("generator: give exactly one of every_steps and every_s"), std::string::npos);
  j = generated(1);
  j["workers"] = 0;
  EXPECT_NE(error_of(j).find("s.json: workers: 0 is outside [1, 64]"), std::string::npos) << error_of(j);
  j = generated(1);
  j["toy"] = {{"slots", "six"}};
  EXPECT_NE(error_of(j).find("toy.slots: must be an integer"), std::string::npos) << error_of(j);
  j = {{"job", "toy"}, {"workers", 2}, {"steps", 50}, {"seed", 1},
       {"faults", {{{"kind", "slow"}, {"rank", 1}, {"step", 5}, {"factor", 3}, {"extra", 1}}}}};
  EXPECT_NE(error_of(j).find("faults[0].extra: unknown field"), std::string::npos) << error_of(j);
  j["faults"][0].erase("extra");
  const Scenario s = parse_scenario(j, "s.json");
  EXPECT_EQ(s.faults[0].spec(), "slow:1@5x3+20");
  j["faults"][0]["steps"] = 0;
  EXPECT_EQ(parse_scenario(j, "s.json").faults[0].spec(), "slow:1@5x3");
  j["faults"][0]["steps"] = -1;
  EXPECT_NE(error_of(j).find("faults[0].steps"), std::string::npos) << error_of(j);
}

TEST(ReportFaults, JoinsDetectionsWithRecoveries) {
  std::istringstream in(
      R"({"time":1,"event":"start","world":3}
{"time":2,"event":"inject","kind":"kill","rank":1,"step":15}
{"time":2,"event":"fault","kind":"killed","rank":1,"step":15,"detect_ms":6.2}
{"time":2,"event":"reform","epoch":1}
{"time":3,"event":"recovered","kind":"killed","rank":1,"recovery_ms":180,"steps_lost":0}
{"time":4,"event":"straggler","rank":2,"step":30,"compute_ms":12,"median_ms":4,"ratio":3}
not json
{"time":5,"event":"chaos","kind":"supervisor-kill","step":40}
{"time":6,"event":"fault","kind":"hung","rank":0,"step":44,"detect_ms":1010})");
  const auto marks = train::parse_fault_marks(in);
  ASSERT_EQ(marks.size(), 4u);
  EXPECT_EQ(train::fault_label(marks[0]), "killed r1");
  EXPECT_EQ(train::describe_fault(marks[0]),
            "killed on rank 1 at step 15: detected in 6 ms, recovered in 180 ms, 0 steps lost");
  EXPECT_EQ(train::fault_label(marks[1]), "straggler r2");
  EXPECT_EQ(train::describe_fault(marks[2]), "chaos supervisor-kill at step 40");
  EXPECT_NE(train::describe_fault(marks[3]).find("no recovery recorded"), std::string::npos);
}

}  // namespace
}  // namespace holdfast::dist
