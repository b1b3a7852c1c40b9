package caller

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var (
	bookingKey = []byte("booking-key-0123456789")
	chatKey    = []byte("chat-key-0123456789")
)

func TestParseAndAuthenticate(t *testing.T) {
	yamlFile := "callers:\n  - name: booking\n    key_sha256: " + HashKey(bookingKey) +
		"\n  - name: chat-bot\n    key_sha256: " + strings.ToUpper(HashKey(chatKey)) + "\n"
	jsonFile := `{"callers":[{"name":"booking","key_sha256":"` + HashKey(bookingKey) + `"},{"name":"chat-bot","key_sha256":"` + HashKey(chatKey) + `"}]}`
	for name, data := range map[string]string{"yaml": yamlFile, "json": jsonFile} {
		t.Run(name, func(t *testing.T) {
			s, err := Parse([]byte(data))
			if err != nil {
				t.Fatal(err)
			}
			if s.Len() != 2 {
				t.Fatalf("Len() = %d; want 2", s.Len())
			}
			for key, want := range map[string]string{string(bookingKey): "booking", string(chatKey): "chat-bot"} {
				c, ok := s.Authenticate([]byte(key))
				if !ok || c.Name != want {
					t.Errorf("Authenticate(key of %s) = %v, %v", want, c, ok)
				}
			}
			for _, bad := range []string{"", "booking", HashKey(bookingKey), string(bookingKey) + " ", "x"} {
				if c, ok := s.Authenticate([]byte(bad)); ok {
					t.Errorf("Authenticate(%q) = %v; want no caller", bad, c)
				}
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	h := HashKey(bookingKey)
	tests := []struct {
		name, data, want string
	}{
		{"empty", "", "lists no callers"},
		{"no callers", "callers: []", "lists no callers"},
		{"not yaml", "callers: [", "not valid YAML or JSON"},
		{"unknown field", "callers:\n  - name: a\n    key: x\n", `unknown field "key"`},
		{"plain key instead of digest", "callers:\n  - name: a\n    key_sha256: secret\n", `caller "a": key_sha256 must be 64 hex digits (the SHA-256 of the API key)`},
		{"bad name", "callers:\n  - name: Booking Service\n    key_sha256: " + h + "\n", `caller "Booking Service": name must be 1-63 lowercase letters, digits, '.', '_' or '-'`},
		{"missing name", "callers:\n  - key_sha256: " + h + "\n", `callers[0]: name must be`},
		{"duplicate name", "callers:\n  - name: a\n    key_sha256: " + h + "\n  - name: a\n    key_sha256: " + HashKey(chatKey) + "\n", `caller "a": name is listed twice`},
		{"duplicate digest", "callers:\n  - name: a\n    key_sha256: " + h + "\n  - name: b\n    key_sha256: " + h + "\n", `caller "b": key_sha256 is the same as caller "a"'s`},
		{"duplicate yaml key", "callers:\n  - name: a\n    name: b\n    key_sha256: " + h + "\n", "not valid YAML or JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse([]byte(tt.data))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse() = %v, %v; want an error containing %q", s, err, tt.want)
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "callers.yaml")
	if err := os.WriteFile(path, []byte("callers:\n  - name: a\n    key_sha256: "+HashKey(bookingKey)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := LoadFile(path); err != nil || s.Len() != 1 {
		t.Fatalf("LoadFile() = %v, %v", s, err)
	}
	if _, err := LoadFile(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml cannot be read") {
		t.Errorf("LoadFile(missing) error = %v", err)
	}
}

func TestStoreReplace(t *testing.T) {
	a, _ := Parse([]byte("callers:\n  - name: a\n    key_sha256: " + HashKey(bookingKey) + "\n"))
	b, _ := Parse([]byte("callers:\n  - name: b\n    key_sha256: " + HashKey(chatKey) + "\n"))
	st := NewStore(a)
	if _, ok := st.Load().Authenticate(bookingKey); !ok {
		t.Fatal("caller a not authenticated")
	}
	st.Replace(b)
	if _, ok := st.Load().Authenticate(bookingKey); ok {
		t.Error("caller a still authenticated after being removed")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("callers:\n  - name: a\n    key_sha256: " + HashKey(bookingKey) + "\n"))
	f.Add([]byte(`{"callers":[{"name":"b","key_sha256":"` + HashKey(chatKey) + `"}]}`))
	f.Add([]byte("callers: [{name: x}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			return
		}
		if s.Len() == 0 {
			t.Fatal("Parse accepted a file with no callers")
		}
		for _, e := range s.entries {
			if !namePattern.MatchString(e.caller.Name) {
				t.Fatalf("Parse accepted caller name %q", e.caller.Name)
			}
		}
	})
}
