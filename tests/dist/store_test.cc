// dist/: the embedded TCP store, the run-token handshake, membership epochs, rendezvous URLs.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <chrono>
#include <thread>

#include "dist/auth.h"
#include "dist/errors.h"
#include "dist/membership.h"
#include "dist/net.h"
#include "dist/redis_store.h"
#include "dist/tcp_store.h"

namespace holdfast::dist {
namespace {

using namespace std::chrono_literals;
const std::string kToken = "0123456789abcdef0123456789abcdef";

std::vector<char> bytes(const std::string& s) { return {s.begin(), s.end()}; }

TEST(TcpStore, SetGetAddAndMissingKeys) {
  TcpStoreServer server("127.0.0.1", 0, kToken);
  ASSERT_GT(server.port(), 0);
  TcpStoreClient a("127.0.0.1", server.port(), kToken, 2s), b("127.0.0.1", server.port(), kToken, 2s);
  EXPECT_FALSE(a.try_get("k"));
  a.set("k", bytes("v1"));
  EXPECT_EQ(*b.try_get("k"), bytes("v1"));
  b.set("k", bytes("v2"));  // overwrite
  EXPECT_EQ(a.get("k"), bytes("v2"));
  EXPECT_EQ(a.add("n", 5), 5);
  EXPECT_EQ(b.add("n", -2), 3);
  EXPECT_EQ(*a.try_get_string("n"), "3");
  a.set("bin", std::vector<char>{'\0', '\xff', '\0'});
  EXPECT_EQ(b.try_get("bin")->size(), 3u);
  std::vector<char> big(3 << 20, 'x');
  a.set("big", big);
  EXPECT_EQ(b.try_get("big")->size(), big.size());
  a.set_string("text", "t");
  EXPECT_THROW(a.add("text", 1), RendezvousError);
}

TEST(TcpStore, WaitSeesLateKeysAndTimesOutNamingThem) {
  TcpStoreServer server("127.0.0.1", 0, kToken);
  TcpStoreClient a("127.0.0.1", server.port(), kToken, 2s);
  std::thread late([&] {
    TcpStoreClient b("127.0.0.1", server.port(), kToken, 2s);
    std::this_thread::sleep_for(50ms);
    b.set("late", bytes("1"));
  });
  a.wait({"late"}, 2000ms);
  late.join();
  const auto t0 = std::chrono::steady_clock::now();
  try {
    a.wait({"late", "never"}, 200ms);
    FAIL() << "wait returned";
  } catch (const RendezvousError& e) {
    EXPECT_NE(std::string(e.what()).find("'never'"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
}

TEST(TcpStore, WaitHookAbortsTheWait) {
  TcpStoreServer server("127.0.0.1", 0, kToken);
  TcpStoreClient a("127.0.0.1", server.port(), kToken, 2s);
  int calls = 0;
  a.set_wait_hook([&] {
    if (++calls == 3) throw EpochChanged("moved on");
  });
  EXPECT_THROW(a.wait({"absent"}, 5000ms), EpochChanged);
}

TEST(TcpStore, RefusesAClientWithoutTheRunToken) {
  TcpStoreServer server("127.0.0.1", 0, kToken);
  try {
    TcpStoreClient bad("127.0.0.1", server.port(), "ffffffffffffffffffffffffffffffff", 2s);
    FAIL() << "a wrong token was accepted";
  } catch (const RunTokenRejected& e) {
    EXPECT_NE(std::string(e.what()).find("run token"), std::string::npos) << e.what();
  }
  EXPECT_EQ(server.rejected_clients(), 1);
  TcpStoreClient good("127.0.0.1", server.port(), kToken, 2s);  // the server still serves
  good.set_string("ok", "1");
}

TEST(TcpStore, PortInUseIsAClearError) {
  Fd taken = listen_tcp("127.0.0.1", 0);
  const int port = local_port(taken.get());
  try {
    TcpStoreServer server("127.0.0.1", port, kToken);
    FAIL() << "bound a port in use";
  } catch (const RendezvousError& e) {
    EXPECT_NE(std::string(e.what()).find("already in use"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(std::to_string(port)), std::string::npos) << e.what();
  }
}

TEST(TcpStore, UnreachableStoreNamesTheAddress) {
  Fd probe = listen_tcp("127.0.0.1", 0);
  const int port = local_port(probe.get());
  probe.reset();  // nothing listens there now
  try {
    TcpStoreClient c("127.0.0.1", port, kToken, 500ms);
    FAIL();
  } catch (const RendezvousError& e) {
    EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(port)), std::string::npos) << e.what();
  }
}

TEST(Membership, AuthRecordEpochsAndClaims) {
  TcpStoreServer server("127.0.0.1", 0, kToken);
  TcpStoreClient a("127.0.0.1", server.port(), kToken, 2s);
  create_or_resume_run(a, kToken);
  EXPECT_EQ(current_epoch(a, 1s), 0);
  verify_run(a, kToken, 1s);
  EXPECT_THROW(verify_run(a, "another-token-that-is-long", 1s), RunTokenRejected);
  EXPECT_THROW(create_or_resume_run(a, "another-token-that-is-long"), RunTokenRejected);
  EXPECT_EQ(bump_epoch(a, 0), 1);
  EXPECT_EQ(bump_epoch(a, 0), 1);  // a second claim on epoch 0 changes nothing
  EXPECT_EQ(current_epoch(a, 1s), 1);
  create_or_resume_run(a, kToken);  // a restarted first supervisor moves on
  EXPECT_EQ(current_epoch(a, 1s), 2);
  EXPECT_EQ(wait_epoch_above(a, 1, 1s), 2);
  EXPECT_THROW(wait_epoch_above(a, 2, 100ms), RendezvousError);
  // The record never holds the token itself.
  EXPECT_EQ(a.try_get_string("auth")->find(kToken), std::string::npos);
}

TEST(Auth, TokenMacsDependOnTokenAndMessage) {
  const std::string t = make_run_token();
  EXPECT_EQ(t.size(), 32u);
  EXPECT_NE(t, make_run_token());
  EXPECT_EQ(token_mac(t, "m"), token_mac(t, "m"));
  EXPECT_NE(token_mac(t, "m"), token_mac(t, "n"));
  EXPECT_NE(token_mac(t, "m"), token_mac(t + "x", "m"));
  EXPECT_TRUE(macs_equal("abc", "abc"));
  EXPECT_FALSE(macs_equal("abc", "abd"));
  EXPECT_THROW(check_token_format("short", "T"), InputError);
  EXPECT_THROW(check_token_format("has a space in it, long enough", "T"), InputError);
  check_token_format(t, "T");
}

TEST(RedisUrl, ParsesAndRejectsClearly) {
  const RedisUrl u = RedisUrl::parse("redis://:pw@10.0.0.5:7000/run-1");
  EXPECT_EQ(u.host, "10.0.0.5");
  EXPECT_EQ(u.port, 7000);
  EXPECT_EQ(u.password, "pw");
  EXPECT_EQ(u.run, "run-1");
  EXPECT_EQ(u.str(), "redis://10.0.0.5:7000/run-1");  // no password in messages
  EXPECT_EQ(RedisUrl::parse("redis://host/r").port, 6379);
  EXPECT_THROW(RedisUrl::parse("redis://host:6379"), InputError);
  EXPECT_THROW(RedisUrl::parse("redis://host:6379/bad/name"), InputError);
  EXPECT_THROW(RedisUrl::parse("redis://host:99999/r"), InputError);
  EXPECT_THROW(RedisUrl::parse("http://host:1/r"), InputError);
  EXPECT_THROW(connect_store("ftp://x", kToken, 1s), InputError);
}

TEST(RedisStore, UnreachableServerIsARendezvousError) {
  Fd probe = listen_tcp("127.0.0.1", 0);
  const int port = local_port(probe.get());
  probe.reset();
  try {
    connect_store("redis://127.0.0.1:" + std::to_string(port) + "/r", kToken, 500ms);
    FAIL();
  } catch (const RendezvousError& e) {
    EXPECT_NE(std::string(e.what()).find("unreachable"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace holdfast::dist
