// Python bindings (pybind11): snapshots, routing, the Watcher, and Client: the phase-aware
// C++ Client behind pymemcache's method names, so Python apps route keys exactly like the C++
// library and the ketama clients and follow transitions. Errors become ValueError (bad input)
// or RuntimeError (I/O) at this boundary.
// Thread-safety: as the C++ classes. Client calls release the GIL while they talk to memcached
// (the C++ Client serialises them on its own lock); nothing else blocks for long.
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "clientconfig/client.h"
#include "clientconfig/snapshot.h"
#include "clientconfig/watcher.h"

namespace py = pybind11;
using namespace clientconfig;

namespace {

template <class T> T unwrap(Result<T> r) {
  if (!r.ok()) {
    if (r.error().code == ErrorCode::InvalidArgument) throw py::value_error(r.error().message);
    throw std::runtime_error(r.error().toString());
  }
  return std::move(r).value();
}

// pybind11 holders cannot be shared_ptr<const T>; snapshots stay immutable
// because no mutating method is bound.
using PySnapshot = std::shared_ptr<Snapshot>;
PySnapshot toPy(SnapshotPtr s) { return std::const_pointer_cast<Snapshot>(std::move(s)); }

Hashing hashingFrom(const std::string& name) {
  auto h = parseHashing(name);
  if (!h) throw py::value_error("unknown hashing: " + name);
  return *h;
}

// A Python-side route result: the owner and, during a transition, the next and previous owners.
// It unpacks as (owner, previous_owner), what route() returned before transitions existed.
struct PyRoute {
  py::object owner, next_owner, previous_owner;
};

PyRoute routeOf(const PySnapshot& s, const std::string& key) {
  Route r = s->route(key);
  auto obj = [](const Server* p) { return p ? py::cast(*p) : py::none(); };
  return {obj(r.owner), obj(r.next_owner), obj(r.previous_owner)};
}

void check(const Result<void>& r) {
  if (r.ok()) return;
  if (r.error().code == ErrorCode::InvalidArgument) throw py::value_error(r.error().message);
  throw std::runtime_error(r.error().toString());
}

// pymemcache's rules for keys and values: bytes as they are, str as UTF-8, anything else
// (int, float) as its str() in UTF-8.
std::string bytesOf(const py::handle& h) {
  if (py::isinstance<py::bytes>(h)) return h.cast<std::string>();
  if (py::isinstance<py::str>(h)) return h.cast<std::string>(); // pybind11 encodes str as UTF-8
  return py::str(h).cast<std::string>();
}

uint32_t expireOf(int64_t expire) {
  if (expire < 0 || expire > UINT32_MAX) throw py::value_error("expire must be 0..2^32-1 seconds");
  return static_cast<uint32_t>(expire);
}

// clientconfig.Client: owns the Watcher that follows the mounted directory and the C++ Client
// that follows the Watcher (the Client goes first: it unregisters from the Watcher).
struct PyClient {
  std::unique_ptr<Watcher> watcher;
  ClientPtr client;
  bool default_noreply = true;
  ~PyClient() {
    client.reset();
    watcher.reset();
  }
  bool noreply(const py::object& arg) const { return arg.is_none() ? default_noreply : arg.cast<bool>(); }
};

// The TLS and authentication keyword arguments of Client.
struct PySecurity {
  std::string tls_ca, tls_cert, tls_key, auth_file;
};

std::unique_ptr<PyClient> makeClient(const std::string& dir, double connect_timeout, double timeout,
                                     bool default_noreply, int poll_interval_ms, bool fallback_to_previous,
                                     bool backfill, const PySecurity& security) {
  if (connect_timeout <= 0 || timeout <= 0) throw py::value_error("timeouts must be > 0 seconds");
  WatcherOptions w;
  w.dir = dir;
  w.poll_interval = std::chrono::milliseconds(poll_interval_ms);
  auto c = std::make_unique<PyClient>();
  c->watcher = unwrap(Watcher::start(w));
  ClientOptions o;
  o.connect_timeout = std::chrono::milliseconds(static_cast<int64_t>(connect_timeout * 1000));
  o.io_timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout * 1000));
  o.fallback_to_previous = fallback_to_previous;
  o.backfill = backfill;
  o.tls = TlsFiles{security.tls_ca, security.tls_cert, security.tls_key};
  o.auth_file = security.auth_file;
  c->client = unwrap(Client::create(*c->watcher, o));
  c->default_noreply = default_noreply;
  return c;
}

py::object getMany(PyClient& c, const py::iterable& keys) {
  std::vector<std::string> ks;
  std::map<std::string, py::object> original;
  for (const auto& k : keys) {
    ks.push_back(bytesOf(k));
    original.emplace(ks.back(), py::reinterpret_borrow<py::object>(k));
  }
  Result<std::map<std::string, Item>> r = [&] {
    py::gil_scoped_release release;
    return c.client->getMulti(ks);
  }();
  py::dict out;
  for (auto& [k, item] : unwrap(std::move(r))) out[original.at(k)] = py::bytes(item.value);
  return out;
}

// The pymemcache-named methods; see the module's Client docstring.
void bindClientMethods(py::class_<PyClient>& cls) {
  cls.def("get", [](PyClient& c, const py::handle& key, py::object default_value) -> py::object {
    std::string k = bytesOf(key);
    Result<std::optional<Item>> r = [&] { py::gil_scoped_release release; return c.client->get(k); }();
    auto item = unwrap(std::move(r));
    return item ? py::bytes(item->value) : default_value;
  }, py::arg("key"), py::arg("default") = py::none());
  cls.def("get_many", &getMany, py::arg("keys"));
  cls.def("set", [](PyClient& c, const py::handle& key, const py::handle& value, int64_t expire, py::object noreply,
                   py::object flags) {
    std::string k = bytesOf(key), v = bytesOf(value);
    uint32_t ttl = expireOf(expire), f = flags.is_none() ? 0 : flags.cast<uint32_t>();
    Result<void> r = [&] { py::gil_scoped_release release; return c.client->set(k, v, ttl, f); }();
    check(r);
    return true;
  }, py::arg("key"), py::arg("value"), py::arg("expire") = 0, py::arg("noreply") = py::none(),
     py::arg("flags") = py::none());
  cls.def("add", [](PyClient& c, const py::handle& key, const py::handle& value, int64_t expire, py::object noreply,
                   py::object flags) {
    std::string k = bytesOf(key), v = bytesOf(value);
    uint32_t ttl = expireOf(expire), f = flags.is_none() ? 0 : flags.cast<uint32_t>();
    Result<bool> r = [&] { py::gil_scoped_release release; return c.client->add(k, v, ttl, f); }();
    bool stored = unwrap(std::move(r));
    return c.noreply(noreply) ? true : stored; // pymemcache answers True when it did not wait
  }, py::arg("key"), py::arg("value"), py::arg("expire") = 0, py::arg("noreply") = py::none(),
     py::arg("flags") = py::none());
  cls.def("delete", [](PyClient& c, const py::handle& key, py::object noreply) {
    std::string k = bytesOf(key);
    Result<bool> r = [&] { py::gil_scoped_release release; return c.client->remove(k); }();
    bool deleted = unwrap(std::move(r));
    return c.noreply(noreply) ? true : deleted;
  }, py::arg("key"), py::arg("noreply") = py::none());
  cls.def("touch", [](PyClient& c, const py::handle& key, int64_t expire, py::object noreply) {
    std::string k = bytesOf(key);
    uint32_t ttl = expireOf(expire);
    Result<bool> r = [&] { py::gil_scoped_release release; return c.client->touch(k, ttl); }();
    bool touched = unwrap(std::move(r));
    return c.noreply(noreply) ? true : touched;
  }, py::arg("key"), py::arg("expire") = 0, py::arg("noreply") = py::none());
  for (bool up : {true, false}) {
    cls.def(up ? "incr" : "decr", [up](PyClient& c, const py::handle& key, uint64_t value, bool noreply) -> py::object {
      std::string k = bytesOf(key);
      Result<std::optional<uint64_t>> r = [&] {
        py::gil_scoped_release release;
        return up ? c.client->incr(k, value) : c.client->decr(k, value);
      }();
      auto n = unwrap(std::move(r));
      if (noreply || !n) return py::none();
      return py::int_(*n);
    }, py::arg("key"), py::arg("value"), py::arg("noreply") = false);
  }
}

// Server, Route and Snapshot, and the functions that make snapshots.
void bindSnapshots(py::module_& m) {
  py::class_<Server>(m, "Server")
      .def_readonly("name", &Server::name)
      .def_readonly("host", &Server::host)
      .def_readonly("address", &Server::address)
      .def_readonly("port", &Server::port)
      .def_readonly("weight", &Server::weight)
      .def_readonly("state", &Server::state)
      .def_property_readonly("active", &Server::active)
      .def_property_readonly("endpoint", &Server::endpoint)
      .def("__eq__", [](const Server& a, const Server& b) { return a == b; })
      .def("__hash__", [](const Server& s) { return py::hash(py::str(s.host + ":" + std::to_string(s.port))); })
      .def("__repr__", [](const Server& s) { return "<Server " + s.name + " " + s.endpoint() + ">"; });

  py::class_<PyRoute>(m, "Route", "Where a key lives: owner, and during a transition next_owner (prepare, copy) "
                                  "or previous_owner (switch, finalize) when it differs. Unpacks as "
                                  "(owner, previous_owner).")
      .def_readonly("owner", &PyRoute::owner)
      .def_readonly("next_owner", &PyRoute::next_owner)
      .def_readonly("previous_owner", &PyRoute::previous_owner)
      .def("__len__", [](const PyRoute&) { return 2; })
      .def("__iter__", [](const PyRoute& r) { return py::iter(py::make_tuple(r.owner, r.previous_owner)); })
      .def("__getitem__", [](const PyRoute& r, int i) {
        if (i == 0 || i == -2) return r.owner;
        if (i == 1 || i == -1) return r.previous_owner;
        throw py::index_error("Route unpacks as (owner, previous_owner)");
      })
      .def("__repr__", [](const PyRoute& r) {
        return "<Route owner=" + py::repr(r.owner).cast<std::string>() + " next=" + py::repr(r.next_owner).cast<std::string>() +
               " previous=" + py::repr(r.previous_owner).cast<std::string>() + ">";
      });

  py::class_<Snapshot, PySnapshot>(m, "Snapshot")
      .def_property_readonly("version", &Snapshot::version)
      .def_readonly("cluster", &Snapshot::cluster)
      .def_property_readonly("source", [](const Snapshot& s) {
        return std::string(s.source == Snapshot::Source::EndpointsJson ? "endpoints.json" : "servers");
      }, "The file it was read from: \"endpoints.json\" or \"servers\".")
      .def_property_readonly("hashing", [](const Snapshot& s) { return std::string(hashingName(s.hashing())); })
      .def_property_readonly("servers", [](const Snapshot& s) { return s.servers(); })
      .def_property_readonly("has_previous", [](const Snapshot& s) { return s.previous.has_value(); })
      .def_property_readonly("previous_servers",
                             [](const Snapshot& s) { return s.previous ? s.previous->servers : std::vector<Server>{}; })
      .def("owner", [](const PySnapshot& s, const std::string& key) -> py::object {
        const Server* o = s->current.owner(key);
        return o ? py::cast(*o) : py::none();
      }, "The server that owns key (None on an empty ring).")
      .def_property_readonly("phase", [](const Snapshot& s) { return std::string(phaseName(s.phase())); },
                             "\"stable\", \"prepare\", \"copy\", \"switch\" or \"finalize\".")
      .def_property_readonly("next_servers",
                             [](const Snapshot& s) { return s.next ? s.next->servers : std::vector<Server>{}; })
      .def("route", &routeOf, "Route for key: .owner, .next_owner, .previous_owner (unpacks as (owner, previous_owner)).")
      .def_property_readonly("tls", [](const Snapshot& s) -> py::object {
        if (!s.security.tls) return py::none();
        return py::str(s.security.client_certificate ? "require" : "none");
      }, "None when the servers speak plaintext, else the client-auth mode: \"none\" or \"require\".")
      .def_property_readonly("auth", [](const Snapshot& s) -> py::object {
        return s.security.auth ? py::object(py::str("ascii")) : py::none();
      }, "\"ascii\" when the servers require memcached ASCII authentication, else None.")
      .def("to_json", [](const Snapshot& s) { return toJson(s); })
      .def("__repr__", [](const Snapshot& s) {
        return "<Snapshot " + s.cluster + " version " + std::to_string(s.version()) + ", " +
               std::to_string(s.servers().size()) + " servers>";
      });

  m.def("parse", [](const std::string& text) { return toPy(unwrap(parseSnapshot(text))); }, py::arg("endpoints_json"),
        "Parse endpoints.json text.");
  m.def("parse_servers", [](const std::string& text, const std::string& hashing) {
    return toPy(unwrap(parseServersFile(text, hashingFrom(hashing))));
  }, py::arg("text"), py::arg("hashing") = "ketama-libmemcached", "Parse the plain servers file.");
  m.def("load", [](const std::string& path, const std::string& hashing) {
    return toPy(unwrap(loadPath(path, hashingFrom(hashing))));
  }, py::arg("path"), py::arg("servers_hashing") = "ketama-libmemcached",
        "Load a ConfigMap directory (endpoints.json, else servers) or a single file.");
  m.def("moved_fraction", [](const PySnapshot& a, const PySnapshot& b, size_t sample) {
    return movedFraction(*a, *b, sample);
  }, py::arg("old"), py::arg("new"), py::arg("sample_keys") = 100000);

}

void bindWatcher(py::module_& m) {
  py::class_<Watcher>(m, "Watcher")
      .def(py::init([](const std::string& dir, int poll_interval_ms, bool allow_empty_start,
                       const std::string& servers_hashing, int64_t version_regression_grace_ms) {
             if (version_regression_grace_ms < 0) throw py::value_error("version_regression_grace_ms must be >= 0");
             WatcherOptions o;
             o.dir = dir;
             o.poll_interval = std::chrono::milliseconds(poll_interval_ms);
             o.allow_empty_start = allow_empty_start;
             o.servers_file_hashing = hashingFrom(servers_hashing);
             o.version_regression_grace = std::chrono::milliseconds(version_regression_grace_ms);
             return unwrap(Watcher::start(o));
           }),
           py::arg("dir"), py::arg("poll_interval_ms") = 1000, py::arg("allow_empty_start") = false,
           py::arg("servers_hashing") = "ketama-libmemcached",
           py::arg("version_regression_grace_ms") = WatcherOptions{}.version_regression_grace.count(),
           "Follow a mounted endpoints ConfigMap directory; reloads happen on a background thread. "
           "Files that cannot be applied (broken, not a regular file, a lower version, endpoints.json "
           "gone) keep the last good snapshot and count in error_count; an empty list, a lower version "
           "that stayed version_regression_grace_ms, and a plain servers list count in warning_count.")
      .def("current", [](const Watcher& w) { return toPy(w.current()); }, "The latest good Snapshot (None before the first with allow_empty_start).")
      .def("route", [](const Watcher& w, const std::string& key) -> py::object {
        auto s = toPy(w.current());
        if (!s) return py::none();
        return py::cast(routeOf(s, key));
      })
      .def("reload_now", [](Watcher& w) { return unwrap(w.reloadNow()); },
           "Re-read the directory now; True if a new snapshot was applied. Raises what was not applied.")
      .def_property_readonly("error_count", &Watcher::errorCount)
      .def_property_readonly("warning_count", &Watcher::warningCount)
      .def_property_readonly("reload_count", &Watcher::reloadCount)
      .def_property_readonly("last_error", &Watcher::lastError)
      .def_property_readonly("last_warning", &Watcher::lastWarning);

}

void bindClient(py::module_& m) {
  py::class_<PyClient> client(m, "Client", R"(A memcached client for a mounted endpoints ConfigMap directory, with
pymemcache's method names, arguments and return values (get, get_many, set, add, delete,
touch, incr, decr, close). Keys and values: bytes, or str (UTF-8); get returns bytes.
It routes with the operator's ring, follows the directory (a Watcher), and applies the
transition phases: in prepare/copy every write also deletes the key on its next owner; in
switch/finalize a miss reads the previous owner and backfills the new one (with a CAS re-check),
and writes delete the key on the previous owner.
Every call waits for memcached's answer (the invalidations must follow the write): noreply only
chooses the return value, as in pymemcache (True when noreply). Errors: ValueError for a bad key
or value, RuntimeError when a server cannot be reached or times out, refuses the client's
certificate or credentials (PermissionDenied), or needs TLS or credentials that were not given
(FailedPrecondition, naming the keyword argument's option).)");
  client.def(py::init([](const std::string& dir, double connect_timeout, double timeout, bool default_noreply,
                         int poll_interval_ms, bool fallback_to_previous, bool backfill, const std::string& tls_ca,
                         const std::string& tls_cert, const std::string& tls_key, const std::string& auth_file) {
               return makeClient(dir, connect_timeout, timeout, default_noreply, poll_interval_ms, fallback_to_previous,
                                 backfill, PySecurity{tls_ca, tls_cert, tls_key, auth_file});
             }),
             py::arg("mount_dir"), py::arg("connect_timeout") = 0.5, py::arg("timeout") = 0.5,
             py::arg("default_noreply") = true, py::arg("poll_interval_ms") = 1000,
             py::arg("fallback_to_previous") = true, py::arg("backfill") = true, py::kw_only(),
             py::arg("tls_ca") = "", py::arg("tls_cert") = "", py::arg("tls_key") = "", py::arg("auth_file") = "",
             "tls_ca, tls_cert, tls_key: files of a mounted kubernetes.io/tls Secret (ca.crt, tls.crt, tls.key), "
             "used when endpoints.json says \"tls\" (tls_cert/tls_key when clientAuth is \"require\"); "
             "auth_file: user:password (memcached -Y format), used when it says \"auth\": \"ascii\". "
             "Rotated files are picked up for new connections without a restart.");
  bindClientMethods(client);
  client.def("close", [](PyClient& c) { c.client->close(); }, "Close every connection; later calls reconnect.")
      .def("snapshot", [](const PyClient& c) { return toPy(c.client->snapshot()); })
      .def("route", [](const PyClient& c, const py::handle& key) -> py::object {
        auto s = toPy(c.client->snapshot());
        if (!s) return py::none();
        return py::cast(routeOf(s, bytesOf(key)));
      })
      .def_property_readonly("stats", [](const PyClient& c) {
        ClientStats st = c.client->stats();
        py::dict d;
        d["fallback_hits"] = st.fallback_hits;
        d["backfills"] = st.backfills;
        d["backfills_undone"] = st.backfills_undone;
        d["invalidations"] = st.invalidations;
        d["fallback_errors"] = st.fallback_errors;
        return d;
      }, "Counters of the transition rules: fallback_hits, backfills, backfills_undone, invalidations.")
      .def_property_readonly("credentials_error", [](const PyClient& c) { return c.client->credentialsError(); },
                             "Why the TLS or auth files last failed to reload (the previous ones stay in use), or None.")
      .def_property_readonly("watcher", [](PyClient& c) -> Watcher& { return *c.watcher; },
                             py::return_value_policy::reference_internal);
}

} // namespace

PYBIND11_MODULE(clientconfig, m) {
  m.doc() = "memcached-operator client configuration: endpoints snapshots, ketama routing, ConfigMap watcher, "
            "phase-aware memcached client";
  bindSnapshots(m);
  bindWatcher(m);
  bindClient(m);
}
