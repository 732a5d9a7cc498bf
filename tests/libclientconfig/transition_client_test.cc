// The phase rules of Client (client.h) against three real memcached processes: a table of every
// operation in every phase (where the value lands, which copies are gone), and the races of the
// transition protocol, each put in its window deterministically: a write after the operator
// copied a key to its next owner, a backfill racing a write or a delete on the previous owner,
// a delete during switch, and writers on both sides of the list's propagation.
#include <gtest/gtest.h>

#include "clientconfig/client.h"
#include "clientconfig/memcached_admin.h"
#include "memcached_process.h"

namespace clientconfig {
namespace {

using namespace std::chrono_literals;
using testing::MemcachedProcess;

class TransitionClientTest : public ::testing::Test {
protected:
  void SetUp() override {
    for (int i = 0; i < 3; ++i) {
      procs_.push_back(std::make_unique<MemcachedProcess>());
      ASSERT_TRUE(procs_.back()->running());
    }
    auto before = parseSnapshot(document(std::nullopt, {0, 1}, {}, {}));
    auto after = parseSnapshot(document(std::nullopt, {0, 1, 2}, {}, {}));
    ASSERT_TRUE(before.ok() && after.ok());
    // A key that moves from its owner in {0,1} to server 2 when the ring grows.
    for (int i = 0; key_.empty(); ++i) {
      std::string k = "item:" + std::to_string(i);
      if ((*before)->route(k).owner->port != (*after)->route(k).owner->port) key_ = k;
    }
    old_owner_ = procIndex((*before)->route(key_).owner->port);
    new_owner_ = procIndex((*after)->route(key_).owner->port);
  }

  PublishedRing ring(uint64_t version, const std::vector<int>& members) const {
    PublishedRing r;
    r.version = version;
    for (int i : members)
      r.servers.push_back({"mc-" + std::to_string(i), "mc-" + std::to_string(i) + ".mc.test.svc", "127.0.0.1",
                           procs_[i]->port(), 1, "active"});
    return r;
  }
  // endpoints.json of growing {0,1} -> {0,1,2} in `phase`.
  std::string document(std::optional<Phase> phase, const std::vector<int>& servers, const std::vector<int>& next,
                       const std::vector<int>& previous) const {
    EndpointsDocument d;
    d.cluster = "test/mc";
    d.phase = phase;
    d.current = ring(5, servers);
    if (!next.empty()) d.next = ring(6, next);
    if (!previous.empty()) d.previous = ring(4, previous);
    return renderEndpointsJson(d);
  }
  SnapshotPtr snapshotIn(Phase phase) const {
    std::string text;
    switch (phase) {
    case Phase::Stable: text = document(Phase::Stable, {0, 1}, {}, {}); break;
    case Phase::Prepare:
    case Phase::Copy: text = document(phase, {0, 1}, {0, 1, 2}, {}); break;
    case Phase::Switch:
    case Phase::Finalize: text = document(phase, {0, 1, 2}, {}, {0, 1}); break;
    }
    auto s = parseSnapshot(text);
    EXPECT_TRUE(s.ok()) << s.error().toString();
    return *s;
  }
  // The server a client in `phase` treats as the owner, and the other copy's server.
  int ownerIn(Phase p) const { return p == Phase::Switch || p == Phase::Finalize ? new_owner_ : old_owner_; }
  int otherIn(Phase p) const { return ownerIn(p) == new_owner_ ? old_owner_ : new_owner_; }

  int procIndex(uint16_t port) const {
    for (size_t i = 0; i < procs_.size(); ++i) {
      if (procs_[i]->port() == port) return static_cast<int>(i);
    }
    return -1;
  }
  MemcachedAdminPtr admin(int i) {
    auto a = MemcachedAdmin::connect("127.0.0.1", procs_[i]->port(), 1000ms);
    EXPECT_TRUE(a.ok());
    return a.ok() ? std::move(*a) : nullptr;
  }
  // The value of key_ on server i, "" when absent.
  std::string valueOn(int i) {
    auto v = admin(i)->metaGet(key_);
    EXPECT_TRUE(v.ok());
    return v.ok() && v->has_value() ? (*v)->value : "";
  }
  void flushAll() {
    for (int i = 0; i < 3; ++i) ASSERT_EQ(admin(i)->command("flush_all").value(), "OK");
  }
  void put(int i, const std::string& value) {
    if (!value.empty()) {
      ASSERT_TRUE(*admin(i)->metaSet(key_, value, 0, 0));
    }
  }
  // The operator's copy step (issue 10, copy): read the source with its CAS, add to the target,
  // re-read the source CAS and delete the target copy if it changed.
  void operatorCopy(int from, int to) {
    auto src = admin(from);
    auto v = src->metaGet(key_);
    ASSERT_TRUE(v.ok() && v->has_value());
    ASSERT_TRUE(*admin(to)->metaSet(key_, (*v)->value, 0, (*v)->flags, MetaSetMode::Add));
    auto again = src->metaCas(key_);
    ASSERT_TRUE(again.ok() && again->has_value() && **again == (*v)->cas);
  }

  std::vector<std::unique_ptr<MemcachedProcess>> procs_;
  std::string key_;
  int old_owner_ = -1, new_owner_ = -1;
};

std::string show(const Result<std::optional<Item>>& r) {
  if (!r.ok()) return "error: " + r.error().toString();
  return r->has_value() ? (*r)->value : "miss";
}
std::string show(const Result<bool>& r) { return r.ok() ? (*r ? "true" : "false") : "error: " + r.error().toString(); }
std::string show(const Result<void>& r) { return r.ok() ? "ok" : "error: " + r.error().toString(); }
std::string show(const Result<std::optional<uint64_t>>& r) {
  if (!r.ok()) return "error: " + r.error().toString();
  return r->has_value() ? std::to_string(**r) : "miss";
}

// One operation in one phase: the key starts as `owner_before` on the server the client treats
// as its owner and `other_before` on the other one ("" = absent).
struct PhaseCase {
  Phase phase;
  std::string op;
  std::string owner_before, other_before;
  std::string result, owner_after, other_after;
};

std::string run(Client& c, const std::string& op, const std::string& key) {
  if (op == "set") return show(c.set(key, "v"));
  if (op == "add") return show(c.add(key, "v"));
  if (op == "delete") return show(c.remove(key));
  if (op == "get") return show(c.get(key));
  if (op == "getMulti") {
    auto m = c.getMulti({key});
    if (!m.ok()) return "error: " + m.error().toString();
    return m->count(key) ? m->at(key).value : "miss";
  }
  if (op == "incr") return show(c.incr(key, 1));
  if (op == "decr") return show(c.decr(key, 1));
  if (op == "touch") return show(c.touch(key, 100));
  return "unknown op";
}

TEST_F(TransitionClientTest, EveryOperationInEveryPhase) {
  const std::vector<PhaseCase> cases = {
      // stable: the other server is never touched.
      {Phase::Stable, "set", "5", "9", "ok", "v", "9"},
      {Phase::Stable, "add", "", "9", "true", "v", "9"},
      {Phase::Stable, "delete", "5", "9", "true", "", "9"},
      {Phase::Stable, "get", "", "9", "miss", "", "9"},
      {Phase::Stable, "incr", "5", "9", "6", "6", "9"},
      {Phase::Stable, "touch", "5", "9", "true", "5", "9"},
      // prepare / copy: the owner serves; every change deletes the copy on the next owner.
      {Phase::Prepare, "set", "5", "9", "ok", "v", ""},
      {Phase::Prepare, "add", "", "9", "true", "v", ""},
      {Phase::Prepare, "add", "5", "9", "false", "5", "9"}, // nothing changed: nothing to invalidate
      {Phase::Prepare, "delete", "5", "9", "true", "", ""},
      {Phase::Prepare, "get", "", "9", "miss", "", "9"},   // the next ring is never read
      {Phase::Prepare, "incr", "5", "9", "6", "6", ""},
      {Phase::Prepare, "decr", "5", "9", "4", "4", ""},
      {Phase::Prepare, "touch", "5", "9", "true", "5", ""},
      {Phase::Copy, "set", "5", "9", "ok", "v", ""},
      {Phase::Copy, "delete", "", "9", "true", "", ""},
      {Phase::Copy, "incr", "", "9", "miss", "", "9"},
      // switch / finalize: read the new owner, fall back to the previous one and backfill;
      // every change deletes the key on the previous owner.
      {Phase::Switch, "get", "", "9", "9", "9", "9"},
      {Phase::Switch, "getMulti", "", "9", "9", "9", "9"},
      {Phase::Switch, "get", "5", "9", "5", "5", "9"},
      {Phase::Switch, "get", "", "", "miss", "", ""},
      {Phase::Switch, "set", "5", "9", "ok", "v", ""},
      {Phase::Switch, "set", "", "9", "ok", "v", ""},
      {Phase::Switch, "add", "", "9", "true", "v", ""},
      {Phase::Switch, "delete", "5", "9", "true", "", ""},
      {Phase::Switch, "delete", "", "9", "true", "", ""},
      {Phase::Switch, "incr", "", "9", "10", "10", ""}, // backfilled first, then incremented
      {Phase::Switch, "touch", "", "9", "true", "9", ""},
      {Phase::Switch, "touch", "", "", "false", "", ""},
      {Phase::Finalize, "get", "", "9", "9", "9", "9"},
      {Phase::Finalize, "set", "5", "9", "ok", "v", ""},
      {Phase::Finalize, "delete", "", "9", "true", "", ""},
  };
  for (const auto& c : cases) {
    std::string what = std::string(phaseName(c.phase)) + " " + c.op + " [" + c.owner_before + "|" + c.other_before + "]";
    int owner = ownerIn(c.phase), other = otherIn(c.phase);
    flushAll();
    put(owner, c.owner_before);
    put(other, c.other_before);
    auto client = Client::create(snapshotIn(c.phase));
    ASSERT_TRUE(client.ok());
    EXPECT_EQ(run(**client, c.op, key_), c.result) << what;
    EXPECT_EQ(valueOn(owner), c.owner_after) << what << ": owner";
    EXPECT_EQ(valueOn(other), c.other_after) << what << ": other";
  }
}

// prepare: the operator copies the key to its next owner, then a client writes the owner. The
// copy must be gone, or a client after the switch would read the value the write replaced.
TEST_F(TransitionClientTest, WriteAfterTheCopyRemovesIt) {
  for (const std::string op : {"set", "delete", "incr"}) {
    SCOPED_TRACE(op);
    flushAll();
    put(old_owner_, "1");
    operatorCopy(old_owner_, new_owner_);
    ASSERT_EQ(valueOn(new_owner_), "1");
    auto prepare = Client::create(snapshotIn(Phase::Prepare));
    ASSERT_TRUE(prepare.ok());
    EXPECT_NE(run(**prepare, op, key_).substr(0, 5), "error");
    EXPECT_EQ(valueOn(new_owner_), "") << "the next owner still holds the copy made before the write";
    auto switched = Client::create(snapshotIn(Phase::Switch));
    std::string want = op == "set" ? "v" : op == "incr" ? "2" : "miss";
    EXPECT_EQ(show((*switched)->get(key_)), want);
  }
}

// switch: a client still on the old ring writes (or deletes) the key on the previous owner
// between this client's read there and its CAS re-check; that writer's delete on its next owner
// (our owner) came before our add. The backfilled copy must be removed.
TEST_F(TransitionClientTest, BackfillRacingAWriteIsUndone) {
  for (const std::string racer : {"set", "delete"}) {
    SCOPED_TRACE(racer);
    flushAll();
    put(old_owner_, "old");
    auto old_side = admin(old_owner_);
    ClientOptions o;
    int hooked = 0;
    o.before_backfill_recheck = [&](std::string_view key) {
      ++hooked;
      EXPECT_EQ(valueOn(new_owner_), "old") << "the backfill's add ran before the hook";
      if (racer == "set") {
        ASSERT_TRUE(*old_side->metaSet(key, "new", 0, 0));
      } else {
        ASSERT_TRUE(*old_side->metaDelete(key));
      }
    };
    auto c = Client::create(snapshotIn(Phase::Switch), o);
    // The read itself was taken before the write completed: returning "old" is linearizable.
    EXPECT_EQ(show((*c)->get(key_)), "old");
    EXPECT_EQ(hooked, 1);
    EXPECT_EQ(valueOn(new_owner_), "") << "a backfilled copy older than the write survived";
    EXPECT_EQ((*c)->stats().backfills_undone, 1u);
    EXPECT_EQ((*c)->stats().backfills, 0u);
    // The next read sees the write (or the delete), never "old" again.
    o.before_backfill_recheck = nullptr;
    auto fresh = Client::create(snapshotIn(Phase::Switch), o);
    EXPECT_EQ(show((*fresh)->get(key_)), racer == "set" ? "new" : "miss");
  }
}

// The CAS-conditional undo removes only the backfilled copy: a newer value a switched client
// wrote over it on the owner in the same window stays.
TEST_F(TransitionClientTest, UndoKeepsANewerValueOnTheOwner) {
  put(old_owner_, "old");
  auto old_side = admin(old_owner_);
  auto new_side = admin(new_owner_);
  ClientOptions o;
  o.before_backfill_recheck = [&](std::string_view key) {
    ASSERT_TRUE(*old_side->metaSet(key, "racing", 0, 0));
    ASSERT_TRUE(*new_side->metaSet(key, "newest", 0, 0));
  };
  auto c = Client::create(snapshotIn(Phase::Switch), o);
  EXPECT_EQ(show((*c)->get(key_)), "old");
  EXPECT_EQ(valueOn(new_owner_), "newest");
}

// switch: a delete removes the key from both owners, whichever held it, and clients on either
// side of the propagation (one still in prepare, one in switch) then miss.
TEST_F(TransitionClientTest, DeleteDuringSwitchIsGoneOnBoth) {
  for (Phase deleter : {Phase::Switch, Phase::Prepare}) {
    SCOPED_TRACE(phaseName(deleter));
    flushAll();
    put(old_owner_, "v1");
    operatorCopy(old_owner_, new_owner_);
    auto c = Client::create(snapshotIn(deleter));
    EXPECT_EQ(show((*c)->remove(key_)), "true");
    EXPECT_EQ(valueOn(old_owner_), "");
    EXPECT_EQ(valueOn(new_owner_), "");
    for (Phase reader : {Phase::Prepare, Phase::Switch}) {
      auto r = Client::create(snapshotIn(reader));
      EXPECT_EQ(show((*r)->get(key_)), "miss") << phaseName(reader);
    }
  }
}

// Writers on both sides of the propagation during the switch: whichever wrote last is what
// every client reads, whichever side it reads from.
TEST_F(TransitionClientTest, WritersOnBothSidesOfThePropagation) {
  auto old_side = Client::create(snapshotIn(Phase::Prepare));
  auto new_side = Client::create(snapshotIn(Phase::Switch));
  put(old_owner_, "v0");
  operatorCopy(old_owner_, new_owner_);
  ASSERT_TRUE((*new_side)->set(key_, "v1").ok());
  EXPECT_EQ(show((*old_side)->get(key_)), "miss") << "the new side's write left v0 on the previous owner";
  ASSERT_TRUE((*old_side)->set(key_, "v2").ok());
  EXPECT_EQ(show((*new_side)->get(key_)), "v2") << "the old side's write left v1 on the new owner";
  ASSERT_TRUE((*new_side)->set(key_, "v3").ok());
  EXPECT_EQ(show((*new_side)->get(key_)), "v3");
  EXPECT_EQ(show((*old_side)->get(key_)), "miss");
}

// switch with the previous owner gone (killed, or its pod deleted): a miss on the owner stays a
// miss, not an error, and writes still fail loudly when they cannot invalidate it.
TEST_F(TransitionClientTest, UnreachablePreviousOwnerIsAMissOnRead) {
  ClientOptions o;
  o.connect_timeout = 200ms;
  o.io_timeout = 200ms;
  for (bool backfill : {true, false}) {
    o.backfill = backfill;
    ASSERT_TRUE(admin(new_owner_)->metaDelete(key_).ok());
    auto c = Client::create(snapshotIn(Phase::Switch), o);
    procs_[old_owner_]->stop();
    EXPECT_EQ(show((*c)->get(key_)), "miss") << "backfill=" << backfill;
    auto m = (*c)->getMulti({key_});
    ASSERT_TRUE(m.ok()) << m.error().toString();
    EXPECT_EQ((*c)->stats().fallback_errors, 2u);
    EXPECT_EQ(show((*c)->set(key_, "v")).substr(0, 5), "error");
    EXPECT_EQ(valueOn(new_owner_), "v") << "the write itself landed on the owner";
  }
}

// A client following a reload from prepare to switch keeps connections to all three rings'
// members and applies the new rules at once.
TEST_F(TransitionClientTest, UpdateAppliesTheNewPhase) {
  auto c = Client::create(snapshotIn(Phase::Prepare));
  put(new_owner_, "stale");
  ASSERT_TRUE((*c)->set(key_, "v1").ok());
  EXPECT_EQ(valueOn(new_owner_), "");
  (*c)->update(snapshotIn(Phase::Switch));
  EXPECT_EQ(show((*c)->get(key_)), "v1"); // from the previous owner, backfilled
  EXPECT_EQ(valueOn(new_owner_), "v1");
  (*c)->update(parseSnapshot(document(std::nullopt, {0, 1, 2}, {}, {})).value());
  ASSERT_TRUE((*c)->set(key_, "v2").ok());
  EXPECT_EQ(valueOn(old_owner_), "v1") << "stable: the previous owner is not written any more";
}

} // namespace
} // namespace clientconfig
