// Package atomicwriter writes a set of files into a directory the way the
// kubelet projects ConfigMap, Secret and projected volumes: the payload lives
// in a timestamped directory "..<timestamp>", the symlink "..data" points at
// it, and every user-visible top-level path is a symlink "NAME -> ..data/NAME".
// An update writes a new timestamped directory and swaps "..data" with a
// rename(2), so a reader that opens files through the user-visible paths sees
// either the whole old payload or the whole new one, never a mix.
//
// Not safe for concurrent writers on the same directory.
package atomicwriter

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

const (
	dataDirName    = "..data"
	newDataDirName = "..data_tmp"
)

// File is one projected file: its content and mode.
type File struct {
	Data []byte
	Mode os.FileMode
}

// Write makes dir hold exactly payload (keys are relative paths, possibly
// nested). It returns false without touching anything if dir already holds
// the same payload.
func Write(dir string, payload map[string]File) (bool, error) {
	for p := range payload {
		if err := validatePath(p); err != nil {
			return false, err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	oldTS, _ := os.Readlink(filepath.Join(dir, dataDirName))
	if oldTS != "" && same(filepath.Join(dir, oldTS), payload) {
		return false, nil
	}

	tsDir, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return false, err
	}
	if err := os.Chmod(tsDir, 0o755); err != nil {
		return false, err
	}
	for p, f := range payload {
		full := filepath.Join(tsDir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return false, err
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		if err := os.WriteFile(full, f.Data, mode); err != nil {
			return false, err
		}
		if err := os.Chmod(full, mode); err != nil {
			return false, err
		}
	}

	// Swap ..data atomically.
	tmpLink := filepath.Join(dir, newDataDirName)
	_ = os.Remove(tmpLink)
	if err := os.Symlink(filepath.Base(tsDir), tmpLink); err != nil {
		return false, err
	}
	if err := os.Rename(tmpLink, filepath.Join(dir, dataDirName)); err != nil {
		return false, err
	}

	// Add the user-visible symlinks that are new, drop the ones that are gone.
	wanted := map[string]bool{}
	for p := range payload {
		wanted[strings.SplitN(p, "/", 2)[0]] = true
	}
	for top := range wanted {
		link := filepath.Join(dir, top)
		if target, err := os.Readlink(link); err == nil && target == filepath.Join(dataDirName, top) {
			continue
		}
		_ = os.RemoveAll(link)
		if err := os.Symlink(filepath.Join(dataDirName, top), link); err != nil {
			return false, err
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, "..") {
			if name != dataDirName && name != filepath.Base(tsDir) && e.IsDir() {
				_ = os.RemoveAll(filepath.Join(dir, name)) // old timestamped payloads
			}
			continue
		}
		if !wanted[name] {
			_ = os.RemoveAll(filepath.Join(dir, name))
		}
	}
	return true, nil
}

// same reports whether the payload directory ts already holds payload.
func same(ts string, payload map[string]File) bool {
	n := 0
	err := filepath.Walk(ts, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if info.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(ts, path)
		f, ok := payload[rel]
		if !ok {
			return fmt.Errorf("extra")
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		if info.Mode().Perm() != mode.Perm() {
			return fmt.Errorf("mode")
		}
		data, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(data, f.Data) {
			return fmt.Errorf("data")
		}
		n++
		return nil
	})
	return err == nil && n == len(payload)
}

func validatePath(p string) error {
	if p == "" || filepath.IsAbs(p) || strings.HasPrefix(p, "..") || strings.Contains(p, "/../") || filepath.Clean(p) != p {
		return fmt.Errorf("invalid projected path %q", p)
	}
	return nil
}

// Keys lists the payload's paths in order (for logs).
func Keys(payload map[string]File) []string {
	keys := make([]string, 0, len(payload))
	for k := range payload {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
