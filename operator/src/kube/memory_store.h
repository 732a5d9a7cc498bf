// MemoryStore: the in-memory ObjectStore behind each informer, with a label index so that
// "pods of cluster X" does not scan every pod. Tests can fill one directly with upsert().
//
// Each object is kept as its compact serialized JSON (a string sized to fit), not as a parsed
// web::json tree: a tree costs about three times the text (one heap node per field), and at a
// thousand clusters the trees were most of the operator's idle heap. Readers get a freshly
// parsed copy, as they got a deep copy before. The informer's write path (upsertText,
// eraseText) hands back the previous object's text so that it is parsed only when a handler
// needs it.
//
// Thread-safety: all methods are thread-safe (a reader-writer lock); readers get copies.
#pragma once

#include <map>
#include <optional>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "kube/object_store.h"

namespace mcop::kube {

class MemoryStore : public ObjectStore {
 public:
  std::optional<Object> get(const std::string& ns, const std::string& name) const override;
  std::vector<Object> list(const std::string& ns,
                           const std::map<std::string, std::string>& labels) const override;

  // Inserts or replaces by metadata.namespace/name; returns the previous object, if any.
  std::optional<Object> upsert(const Object& obj);
  // Removes; returns the removed object, if any.
  std::optional<Object> erase(const std::string& ns, const std::string& name);
  // As upsert/erase, but return the previous object's stored text unparsed (see parse()).
  std::optional<std::string> upsertText(const Object& obj);
  std::optional<std::string> eraseText(const std::string& ns, const std::string& name);
  // Every object (sorted by namespace/name).
  std::vector<Object> all() const;
  // The {namespace, name} of every object (sorted), without parsing any.
  std::vector<std::pair<std::string, std::string>> names() const;
  size_t size() const;
  void clear();

  // The object a stored text (from upsertText/eraseText) stands for.
  static Object parse(const std::string& text);

 private:
  struct Entry;
  // Keys of the objects carrying one label pair, sorted by key; the pointers are to nodes of
  // objects_, which a std::map keeps in place until they are erased.
  using Bucket = std::vector<const std::pair<const std::string, Entry>*>;
  using LabelIndex = std::map<std::string, Bucket>;  // "k=v" -> objects with that label
  struct Entry {
    std::string text;                            // compact JSON, capacity == size
    std::vector<LabelIndex::iterator> labels;    // the buckets this object is in
  };
  using Node = std::pair<const std::string, Entry>;

  static std::string key(const std::string& ns, const std::string& name) { return ns + "/" + name; }
  // Both with mu_ held exclusively.
  void indexLocked(const Node& node, const Object& obj, Entry& entry);
  void unindexLocked(const Node& node, Entry& entry);
  static bool hasAll(const Entry& entry, const std::vector<const Bucket*>& want);

  mutable std::shared_mutex mu_;
  std::map<std::string, Entry> objects_;  // "ns/name" -> object; guarded by mu_
  LabelIndex by_label_;                   // guarded by mu_
};

}  // namespace mcop::kube
