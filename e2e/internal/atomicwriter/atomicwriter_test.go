package atomicwriter

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteLayoutAndUpdate(t *testing.T) {
	dir := t.TempDir()
	if _, err := Write(dir, map[string]File{"a": {Data: []byte("1")}, "sub/b": {Data: []byte("2")}}); err != nil {
		t.Fatal(err)
	}
	first, _ := os.Readlink(filepath.Join(dir, "..data"))
	if target, _ := os.Readlink(filepath.Join(dir, "a")); target != "..data/a" {
		t.Fatalf("a -> %q", target)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "sub", "b")); string(b) != "2" {
		t.Fatalf("sub/b = %q", b)
	}
	wrote, err := Write(dir, map[string]File{"a": {Data: []byte("1")}, "sub/b": {Data: []byte("2")}})
	if err != nil || wrote {
		t.Fatalf("identical payload: wrote=%v err=%v, want a no-op", wrote, err)
	}
	if _, err := Write(dir, map[string]File{"a": {Data: []byte("3")}}); err != nil {
		t.Fatal(err)
	}
	second, _ := os.Readlink(filepath.Join(dir, "..data"))
	if second == first {
		t.Fatal("..data not swapped")
	}
	if _, err := os.Stat(filepath.Join(dir, first)); !os.IsNotExist(err) {
		t.Fatal("old payload dir not removed")
	}
	if _, err := os.Lstat(filepath.Join(dir, "sub")); !os.IsNotExist(err) {
		t.Fatal("stale key symlink not removed")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a")); string(b) != "3" {
		t.Fatalf("a = %q", b)
	}
}

func TestRejectsEscapingPaths(t *testing.T) {
	for _, p := range []string{"../x", "/abs", "..data", "a/../../b"} {
		if _, err := Write(t.TempDir(), map[string]File{p: {Data: nil}}); err == nil {
			t.Errorf("path %q accepted", p)
		}
	}
}
