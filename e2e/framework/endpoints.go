package framework

// Endpoints is the published endpoints.json as docs/configmap-contract.md defines it (field order as
// published), shared by the tests that read it (operator) and the ones that write it
// (clientconfig).
type Endpoints struct {
	Schema  string `json:"schema"`
	Cluster string `json:"cluster"`
	Version int64  `json:"version"`
	Hashing string `json:"hashing"`
	// What a client needs to connect (issue 11), published only when on: TLS and whether the
	// members require a client certificate, and memcached's ASCII authentication. Never a
	// credential or a key.
	TLS     *EndpointsTLS    `json:"tls,omitempty"`
	Auth    string           `json:"auth,omitempty"`
	Servers []EndpointServer `json:"servers"`
	// A Warm transition's phase ("" when none), the ring to come (prepare, copy) and the ring
	// before (switch, finalize).
	Phase    string     `json:"phase,omitempty"`
	Next     *Endpoints `json:"next,omitempty"`
	Previous *Endpoints `json:"previous"`
}

// EndpointServer is one member of the ring: Host is hashed, Address is connected to.
type EndpointServer struct {
	Name    string `json:"name"`
	Host    string `json:"host"`
	Address string `json:"address"`
	Port    int    `json:"port"`
	Weight  int    `json:"weight"`
	State   string `json:"state"`
}

// Names lists the servers' names in ring order.
func (ep Endpoints) Names() []string {
	var out []string
	for _, s := range ep.Servers {
		out = append(out, s.Name)
	}
	return out
}

// EndpointsTLS is endpoints.json's "tls": {"clientAuth": "none"|"require"}.
type EndpointsTLS struct {
	ClientAuth string `json:"clientAuth"`
}
