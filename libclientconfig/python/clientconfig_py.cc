// Python bindings (pybind11): snapshots, routing and the Watcher, so Python apps
// route keys exactly like the C++ library and the ketama clients. Errors become
// ValueError (bad input) or RuntimeError (I/O) at this boundary.
// Thread-safety: as the C++ classes; the GIL is released while waiting in nothing
// here, since no call blocks for long.
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

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

// A Python-side route result: the owner and, in a transition window, the previous owner.
py::tuple routeTuple(const PySnapshot& s, const std::string& key) {
  Route r = s->route(key);
  py::object owner = r.owner ? py::cast(*r.owner) : py::none();
  py::object prev = r.previous_owner ? py::cast(*r.previous_owner) : py::none();
  return py::make_tuple(owner, prev);
}

} // namespace

PYBIND11_MODULE(clientconfig, m) {
  m.doc() = "memcached-operator client configuration: endpoints snapshots, ketama routing, ConfigMap watcher";

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
      .def("route", &routeTuple, "(owner, previous_owner or None) for key.")
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
        return routeTuple(s, key);
      })
      .def("reload_now", [](Watcher& w) { return unwrap(w.reloadNow()); },
           "Re-read the directory now; True if a new snapshot was applied. Raises what was not applied.")
      .def_property_readonly("error_count", &Watcher::errorCount)
      .def_property_readonly("warning_count", &Watcher::warningCount)
      .def_property_readonly("reload_count", &Watcher::reloadCount)
      .def_property_readonly("last_error", &Watcher::lastError)
      .def_property_readonly("last_warning", &Watcher::lastWarning);
}
