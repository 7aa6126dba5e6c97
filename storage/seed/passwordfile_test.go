package seed

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadPasswordFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "admin.pw"), []byte("correct horse battery\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		user    User
		want    string
		wantErr string
	}{
		{"case=relative-file", User{Username: "admin", PasswordFile: "admin.pw"}, "correct horse battery", ""},
		{"case=absolute-file", User{Username: "admin", PasswordFile: filepath.Join(dir, "admin.pw")}, "correct horse battery", ""},
		{"case=inline-untouched", User{Username: "alice", Password: "inline-password"}, "inline-password", ""},
		{"case=both", User{Username: "bob", Password: "x", PasswordFile: "admin.pw"}, "", "not both"},
		{"case=missing-file", User{Username: "carol", PasswordFile: "nope.pw"}, "", "password_file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &File{Users: []User{tc.user}}
			err := f.LoadPasswordFiles(dir)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || f.Users[0].Password != tc.want {
				t.Fatalf("password %q, err %v; want %q", f.Users[0].Password, err, tc.want)
			}
		})
	}
}

// Parse accepts password_file (unknown fields are errors, so this guards
// the YAML name).
func TestParsePasswordFile(t *testing.T) {
	f, err := Parse(strings.NewReader("users:\n  - username: admin\n    password_file: admin.pw\n"))
	if err != nil || f.Users[0].PasswordFile != "admin.pw" {
		t.Fatalf("%v %+v", err, f)
	}
}
