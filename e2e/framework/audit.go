package framework

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// AuditEvent is the part of an audit.k8s.io/v1 Event line (the local cluster's API server logs
// every completed write at Metadata level; e2e/cluster audit-log) that tests and the operator
// benchmark read.
type AuditEvent struct {
	Verb       string `json:"verb"`
	UserAgent  string `json:"userAgent"`
	RequestURI string `json:"requestURI"`
	User       struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef struct {
		Resource    string `json:"resource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	Received time.Time `json:"requestReceivedTimestamp"`
}

// Resource is "resource" or "resource/subresource".
func (a AuditEvent) Resource() string {
	if a.ObjectRef.Subresource != "" {
		return a.ObjectRef.Resource + "/" + a.ObjectRef.Subresource
	}
	return a.ObjectRef.Resource
}

func (a AuditEvent) String() string {
	return fmt.Sprintf("%s %s %s %s -> %d", a.Received.Format("15:04:05.000"), a.Verb, a.Resource(), a.ObjectRef.Name, a.ResponseStatus.Code)
}

// ReadAuditLog calls fn with every event of the audit log at path, and of its rotated backups
// (the API server keeps three), whose User-Agent starts with userAgentPrefix. Only lines holding
// that User-Agent are decoded: the log grows to tens of megabytes. Backups are read first; a
// file rotated away while reading is skipped, so callers that need order sort by Received.
func ReadAuditLog(path, userAgentPrefix string, fn func(AuditEvent)) {
	files, _ := filepath.Glob(strings.TrimSuffix(path, ".log") + "-*.log")
	files = append(files, path)
	needle := []byte(`"userAgent":"` + userAgentPrefix)
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue // rotated away meanwhile
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var a AuditEvent
			if bytes.Contains(sc.Bytes(), needle) && json.Unmarshal(sc.Bytes(), &a) == nil {
				fn(a)
			}
		}
		fh.Close()
	}
}
