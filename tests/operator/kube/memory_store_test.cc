// MemoryStore keeps objects as compact JSON text: what comes back must be what went in, and
// the label index must follow replaces and erases.
#include "kube/memory_store.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kube/object_meta.h"

namespace mcop::kube {
namespace {

Object parse(const std::string& s) { return Object::parse(s); }

Object labelled(const std::string& ns, const std::string& name,
                const std::map<std::string, std::string>& labels) {
  Object obj = Object::object();
  obj["metadata"]["namespace"] = Object::string(ns);
  obj["metadata"]["name"] = Object::string(name);
  obj["metadata"]["labels"] = Object::object();
  for (const auto& [k, v] : labels) obj["metadata"]["labels"][k] = Object::string(v);
  return obj;
}

std::vector<std::string> namesOf(const std::vector<Object>& objs) {
  std::vector<std::string> out;
  for (const Object& o : objs) out.push_back(namespaceOf(o) + "/" + nameOf(o));
  return out;
}

TEST(MemoryStoreText, RoundTripsUnicodeEscapesAndLargeNumbers) {
  const std::string text = R"({"metadata":{"name":"a","namespace":"x",
    "annotations":{"note":"caf\u00e9 \u65e5\u672c \ud83d\ude00 \"quoted\" back\\slash\nnew\tline \u0001"}},
    "data":{"raw":"é日本😀"},
    "spec":{"i64max":9223372036854775807,"i64min":-9223372036854775808,
      "u64max":18446744073709551615,"big":9007199254740993,"tenth":0.1,"neg":-1.5e-300,
      "zero":0,"list":[1,"two",null,true,false,{"k":[]}],"empty":{}}})";
  const Object in = parse(text);
  MemoryStore store;
  store.upsert(in);
  auto out = store.get("x", "a");
  ASSERT_TRUE(out);
  EXPECT_TRUE(jsonEqual(*out, in)) << out->serialize();
  EXPECT_EQ(out->serialize(), in.serialize());
  EXPECT_EQ(stringField(*out, {"metadata", "annotations", "note"}),
            "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 \"quoted\" back\\slash\nnew\tline \x01");
  EXPECT_EQ(stringField(*out, {"data", "raw"}), "é日本😀");
  const Object& spec = out->at("spec");
  EXPECT_EQ(spec.at("i64max").as_number().to_int64(), INT64_MAX);
  EXPECT_EQ(spec.at("i64min").as_number().to_int64(), INT64_MIN);
  EXPECT_EQ(spec.at("u64max").as_number().to_uint64(), UINT64_MAX);
  EXPECT_EQ(spec.at("big").as_number().to_int64(), 9007199254740993LL);
  EXPECT_EQ(spec.at("tenth").as_double(), 0.1);
  EXPECT_EQ(spec.at("neg").as_double(), -1.5e-300);
  EXPECT_TRUE(spec.at("list").as_array().at(2).is_null());
  // What list() and all() parse is the same object.
  ASSERT_EQ(store.list("x", {}).size(), 1u);
  EXPECT_EQ(store.list("x", {}).front().serialize(), in.serialize());
  EXPECT_EQ(store.all().front().serialize(), in.serialize());
}

TEST(MemoryStoreText, ReadersGetIndependentCopies) {
  MemoryStore store;
  store.upsert(labelled("x", "a", {{"c", "1"}}));
  Object copy = *store.get("x", "a");
  copy["metadata"]["labels"]["c"] = Object::string("changed");
  EXPECT_EQ(labelsOf(*store.get("x", "a")).at("c"), "1");
}

TEST(MemoryStoreText, UpsertTextAndEraseTextReturnThePreviousObject) {
  MemoryStore store;
  EXPECT_FALSE(store.upsertText(labelled("x", "a", {{"v", "1"}})));
  auto prev = store.upsertText(labelled("x", "a", {{"v", "2"}}));
  ASSERT_TRUE(prev);
  EXPECT_EQ(labelsOf(MemoryStore::parse(*prev)).at("v"), "1");
  auto gone = store.eraseText("x", "a");
  ASSERT_TRUE(gone);
  EXPECT_EQ(labelsOf(MemoryStore::parse(*gone)).at("v"), "2");
  EXPECT_FALSE(store.eraseText("x", "a"));
  EXPECT_FALSE(store.erase("x", "a"));
  EXPECT_EQ(store.size(), 0u);
}

TEST(MemoryStoreText, NamesListsEveryKeyIncludingClusterScoped) {
  MemoryStore store;
  store.upsert(labelled("y", "b", {}));
  store.upsert(labelled("x", "a", {}));
  store.upsert(labelled("", "node-1", {}));
  using P = std::pair<std::string, std::string>;
  EXPECT_EQ(store.names(), (std::vector<P>{{"", "node-1"}, {"x", "a"}, {"y", "b"}}));
  EXPECT_TRUE(store.get("", "node-1"));
}

TEST(MemoryStoreText, LabelIndexFollowsReplaceAndErase) {
  MemoryStore store;
  store.upsert(labelled("x", "b", {{"app", "m"}, {"c", "1"}}));
  store.upsert(labelled("x", "a", {{"app", "m"}, {"c", "1"}}));
  store.upsert(labelled("xy", "a", {{"app", "m"}, {"c", "1"}}));
  store.upsert(labelled("x", "c", {{"app", "m"}, {"c", "2"}}));
  // Sorted by namespace/name, namespace "x" is not a prefix match for "xy".
  EXPECT_EQ(namesOf(store.list("", {{"c", "1"}})), (std::vector<std::string>{"x/a", "x/b", "xy/a"}));
  EXPECT_EQ(namesOf(store.list("x", {{"c", "1"}})), (std::vector<std::string>{"x/a", "x/b"}));
  EXPECT_EQ(namesOf(store.list("x", {{"app", "m"}, {"c", "2"}})), (std::vector<std::string>{"x/c"}));

  // Replace: x/b leaves c=1 and app=m, joins c=2 and a new label.
  store.upsert(labelled("x", "b", {{"c", "2"}, {"new", "yes"}}));
  EXPECT_EQ(namesOf(store.list("x", {{"c", "1"}})), (std::vector<std::string>{"x/a"}));
  EXPECT_EQ(namesOf(store.list("x", {{"c", "2"}})), (std::vector<std::string>{"x/b", "x/c"}));
  EXPECT_EQ(namesOf(store.list("x", {{"app", "m"}, {"c", "2"}})), (std::vector<std::string>{"x/c"}));
  EXPECT_EQ(namesOf(store.list("", {{"new", "yes"}})), (std::vector<std::string>{"x/b"}));
  // Replace with the same labels keeps exactly one index entry.
  store.upsert(labelled("x", "b", {{"c", "2"}, {"new", "yes"}}));
  EXPECT_EQ(store.list("", {{"new", "yes"}}).size(), 1u);

  // Erase: the last holder of a label takes its bucket with it; a new holder starts it again.
  EXPECT_TRUE(store.erase("x", "b"));
  EXPECT_TRUE(store.list("", {{"new", "yes"}}).empty());
  EXPECT_EQ(namesOf(store.list("x", {{"c", "2"}})), (std::vector<std::string>{"x/c"}));
  store.upsert(labelled("z", "d", {{"new", "yes"}}));
  EXPECT_EQ(namesOf(store.list("", {{"new", "yes"}})), (std::vector<std::string>{"z/d"}));
  // Dropping all labels leaves the object listable without a filter only.
  store.upsert(labelled("x", "a", {}));
  EXPECT_EQ(namesOf(store.list("x", {{"c", "1"}})), (std::vector<std::string>{}));
  EXPECT_EQ(namesOf(store.list("x", {})), (std::vector<std::string>{"x/a", "x/c"}));
  EXPECT_EQ(namesOf(store.list("", {{"c", "1"}})), (std::vector<std::string>{"xy/a"}));

  store.clear();
  EXPECT_EQ(store.size(), 0u);
  EXPECT_TRUE(store.list("", {{"app", "m"}}).empty());
  store.upsert(labelled("x", "a", {{"app", "m"}}));
  EXPECT_EQ(store.list("", {{"app", "m"}}).size(), 1u);
}

TEST(MemoryStoreText, ManyObjectsKeepTheIndexSorted) {
  MemoryStore store;
  // Insert out of order so the sorted bucket insert is exercised in the middle too.
  for (int i = 0; i < 200; ++i) {
    int n = (i * 37) % 200;
    store.upsert(labelled("ns", "o" + std::to_string(1000 + n), {{"even", n % 2 ? "no" : "yes"}}));
  }
  for (int n = 0; n < 200; n += 4) store.erase("ns", "o" + std::to_string(1000 + n));
  auto evens = namesOf(store.list("ns", {{"even", "yes"}}));
  ASSERT_EQ(evens.size(), 50u);
  EXPECT_TRUE(std::is_sorted(evens.begin(), evens.end()));
  for (const auto& k : evens) EXPECT_EQ((std::stoi(k.substr(4)) - 1000) % 4, 2) << k;
  EXPECT_EQ(store.list("ns", {{"even", "no"}}).size(), 100u);
}

}  // namespace
}  // namespace mcop::kube
