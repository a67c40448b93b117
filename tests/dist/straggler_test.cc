// dist/: straggler detection and fault-spec parsing.
#include <gtest/gtest.h>

#include "core/error.h"
#include "dist/fault_plan.h"
#include "dist/straggler.h"

namespace holdfast::dist {
namespace {

TEST(Straggler, ReportsARankSlowForConsecutiveStepsOnce) {
  StragglerDetector d(3, 2.0, 3);
  std::vector<StragglerReport> all;
  for (int64_t s = 1; s <= 10; ++s)
    for (int r : {2, 0, 1}) {  // arrival order does not matter
      const int64_t ns = (r == 1 && s >= 4) ? 30'000'000 : 10'000'000;
      for (auto& rep : d.add(r, s, ns)) all.push_back(rep);
    }
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].rank, 1);
  EXPECT_EQ(all[0].step, 6);  // steps 4, 5, 6
  EXPECT_NEAR(all[0].ratio, 3.0, 1e-9);
  EXPECT_NEAR(all[0].median_ms, 10.0, 1e-9);
}

TEST(Straggler, JitterAndIdleRanksAreNotStragglers) {
  StragglerDetector d(4, 2.0, 3);
  for (int64_t s = 1; s <= 20; ++s)
    for (int r = 0; r < 4; ++r) {
      const int64_t ns = r == 3 ? 0 : (s % 2 ? 19'000'000 : 10'000'000) + r;  // rank 3 has no work
      EXPECT_TRUE(d.add(r, s, ns).empty()) << "step " << s << " rank " << r;
    }
}

TEST(Straggler, ReportsAgainAfterRecovering) {
  StragglerDetector d(2, 2.0, 2);
  int reports = 0;
  const int64_t slow[] = {1, 1, 0, 1, 1};
  for (int64_t s = 0; s < 5; ++s) {
    reports += int(d.add(0, s, 10).size());
    reports += int(d.add(1, s, slow[s] ? 50 : 10).size());
  }
  EXPECT_EQ(reports, 2);
}

TEST(FaultPlan, ParsesEveryKindAndRejectsNonsense) {
  const FaultSpec k = parse_fault("kill:1@15", 3);
  EXPECT_EQ(k.kind, "kill");
  EXPECT_EQ(k.rank, 1);
  EXPECT_EQ(k.step, 15);
  EXPECT_TRUE(k.external());
  const FaultSpec s = parse_fault("slow:2@5x3.5", 3);
  EXPECT_FALSE(s.external());
  EXPECT_DOUBLE_EQ(s.factor, 3.5);
  EXPECT_EQ(s.inject_string(), "slow@5:3.5:0");
  const FaultSpec bounded = parse_fault("slow:2@5x3+10", 3);
  EXPECT_EQ(bounded.steps, 10);
  EXPECT_DOUBLE_EQ(bounded.factor, 3);
  EXPECT_EQ(bounded.inject_string(), "slow@5:3:10");
  EXPECT_EQ(parse_fault("slow:0@5+4", 1).inject_string(), "slow@5:3:4");
  EXPECT_EQ(parse_fault("segv:0@7", 1).inject_string(), "segv@7");
  EXPECT_EQ(parse_fault("nan:2@4", 3).inject_string(), "nan@4");
  EXPECT_EQ(parse_fault("bitflip:1@9", 3).inject_string(), "bitflip@9");
  EXPECT_FALSE(parse_fault("bitflip:1@9", 3).external());
  for (const char* bad : {"kill", "kill:1", "boom:1@2", "kill:3@2", "kill:x@2", "kill:1@-2", "kill:1@2x3",
                          "slow:1@2x0.5", "stop:1@", "nan:1@2x3", "bitflip:4@1", "slow:1@2x3+0",
                          "slow:1@2x3+", "kill:1@2+3", "slow:1@2+x"})
    EXPECT_THROW(parse_fault(bad, 3), InputError) << bad;
}

TEST(FaultPlan, InjectListGivesARanksSelfInjectedFaultsAfterAStepInStepOrder) {
  std::vector<FaultSpec> faults;
  for (const char* f : {"exit:1@30", "kill:1@5", "segv:1@10", "slow:1@20x2+5", "hang:0@7", "nan:1@10"})
    faults.push_back(parse_fault(f, 3));
  EXPECT_EQ(inject_list(faults, 1, -1), "segv@10,nan@10,slow@20:2:5,exit@30");
  EXPECT_EQ(inject_list(faults, 1, 10), "slow@20:2:5,exit@30");  // a replacement after segv@10
  EXPECT_EQ(inject_list(faults, 1, 30), "");
  EXPECT_EQ(inject_list(faults, 0, -1), "hang@7");
  EXPECT_EQ(inject_list(faults, 2, -1), "");
}

}  // namespace
}  // namespace holdfast::dist
