package framework

// A minimal memcached text-protocol client over TCP or TLS, for tests that check what a
// member accepts (plaintext, TLS with or without a client certificate, ASCII authentication)
// and run workloads through it. A MemcachedConn is one connection: not safe for concurrent use.

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// MemcachedConn is one connection to a memcached.
type MemcachedConn struct {
	conn    net.Conn
	r       *bufio.Reader
	timeout time.Duration
}

// DialMemcached connects to addr ("ip:port"); with cfg non-nil over TLS, the handshake done
// (so a server that refuses the client's certificate may still fail only the first request,
// as TLS 1.3 verifies it after the client's handshake has finished).
func DialMemcached(addr string, cfg *tls.Config, timeout time.Duration) (*MemcachedConn, error) {
	d := &net.Dialer{Timeout: timeout}
	var conn net.Conn
	var err error
	if cfg != nil {
		conn, err = tls.DialWithDialer(d, "tcp", addr, cfg)
	} else {
		conn, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	return &MemcachedConn{conn: conn, r: bufio.NewReader(conn), timeout: timeout}, nil
}

// Close closes the connection.
func (c *MemcachedConn) Close() error { return c.conn.Close() }

// PeerCertificate is the certificate the server presented (nil without TLS).
func (c *MemcachedConn) PeerCertificate() *x509.Certificate {
	tc, ok := c.conn.(*tls.Conn)
	if !ok || len(tc.ConnectionState().PeerCertificates) == 0 {
		return nil
	}
	return tc.ConnectionState().PeerCertificates[0]
}

// Request writes req and reads one reply line (without CRLF).
func (c *MemcachedConn) Request(req string) (string, error) {
	_ = c.conn.SetDeadline(time.Now().Add(c.timeout))
	if _, err := io.WriteString(c.conn, req); err != nil {
		return "", err
	}
	return c.line()
}

func (c *MemcachedConn) line() (string, error) {
	line, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// Version asks "version".
func (c *MemcachedConn) Version() (string, error) {
	line, err := c.Request("version\r\n")
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(line, "VERSION ") {
		return "", fmt.Errorf("version: %q", line)
	}
	return strings.TrimPrefix(line, "VERSION "), nil
}

// Auth authenticates with memcached's ASCII authentication (-Y): a set of any key whose value
// is "<user> <password>"; memcached answers STORED when the pair is in its auth file.
func (c *MemcachedConn) Auth(user, password string) error {
	v := user + " " + password
	line, err := c.Request(fmt.Sprintf("set auth 0 0 %d\r\n%s\r\n", len(v), v))
	if err != nil {
		return err
	}
	if line != "STORED" {
		return fmt.Errorf("auth: %q", line)
	}
	return nil
}

// Set stores key=value.
func (c *MemcachedConn) Set(key, value string) error {
	line, err := c.Request(fmt.Sprintf("set %s 0 0 %d\r\n%s\r\n", key, len(value), value))
	if err != nil {
		return err
	}
	if line != "STORED" {
		return fmt.Errorf("set %s: %q", key, line)
	}
	return nil
}

// ErrMiss is Get's answer for a key memcached does not have.
var ErrMiss = errors.New("miss")

// Get reads key's value (ErrMiss when absent).
func (c *MemcachedConn) Get(key string) (string, error) {
	line, err := c.Request("get " + key + "\r\n")
	if err != nil {
		return "", err
	}
	if line == "END" {
		return "", ErrMiss
	}
	f := strings.Fields(line)
	if len(f) != 4 || f[0] != "VALUE" || f[1] != key {
		return "", fmt.Errorf("get %s: %q", key, line)
	}
	n, err := strconv.Atoi(f[3])
	if err != nil {
		return "", fmt.Errorf("get %s: %q", key, line)
	}
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(c.r, buf); err != nil {
		return "", err
	}
	if end, err := c.line(); err != nil || end != "END" {
		return "", fmt.Errorf("get %s: no END (%q, %v)", key, end, err)
	}
	return string(buf[:n]), nil
}

// Delete removes key (a missing key is not an error).
func (c *MemcachedConn) Delete(key string) error {
	line, err := c.Request("delete " + key + "\r\n")
	if err != nil {
		return err
	}
	if line != "DELETED" && line != "NOT_FOUND" {
		return fmt.Errorf("delete %s: %q", key, line)
	}
	return nil
}

// Line reads one more reply line (a multi-line answer: stats, meta data).
func (c *MemcachedConn) Line() (string, error) {
	_ = c.conn.SetDeadline(time.Now().Add(c.timeout))
	return c.line()
}

// Gets reads key's value and CAS unique.
func (c *MemcachedConn) Gets(key string) (string, uint64, error) {
	line, err := c.Request("gets " + key + "\r\n")
	if err != nil {
		return "", 0, err
	}
	f := strings.Fields(line)
	if len(f) != 5 || f[0] != "VALUE" {
		return "", 0, fmt.Errorf("gets %s: %q", key, line)
	}
	cas, err := strconv.ParseUint(f[4], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("gets %s: %q", key, line)
	}
	value, err := c.Line()
	if err != nil {
		return "", 0, err
	}
	if end, err := c.Line(); err != nil || end != "END" {
		return "", 0, fmt.Errorf("gets %s: no END (%q, %v)", key, end, err)
	}
	return value, cas, nil
}
