package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/storage"
)

func TestClassify(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("exec: %w", &pgconn.PgError{Code: code, Message: "x"}) }
	opErr := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	cases := []struct {
		name string
		in   error
		want error
		not  []error
	}{
		{"case=no rows", pgx.ErrNoRows, storage.ErrNotFound, []error{storage.ErrUnavailable}},
		{"case=unique violation", pg("23505"), storage.ErrConflict, []error{storage.ErrNotFound}},
		{"case=serialization failure", pg("40001"), fosite.ErrSerializationFailure, []error{storage.ErrConflict}},
		{"case=deadlock", pg("40P01"), fosite.ErrSerializationFailure, nil},
		{"case=admin shutdown", pg("57P01"), storage.ErrUnavailable, nil},
		{"case=connection exception class", pg("08006"), storage.ErrUnavailable, nil},
		{"case=too many connections", pg("53300"), storage.ErrUnavailable, nil},
		{"case=net error", opErr, storage.ErrUnavailable, nil},
		{"case=deadline", context.DeadlineExceeded, storage.ErrUnavailable, nil},
		{"case=other sqlstate", pg("42P01"), nil, []error{storage.ErrUnavailable, storage.ErrConflict, storage.ErrNotFound, fosite.ErrSerializationFailure}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := classify("op", c.in)
			if got == nil {
				t.Fatal("classify returned nil for an error")
			}
			if c.want != nil && !errors.Is(got, c.want) {
				t.Fatalf("classify(%v) = %v; want errors.Is %v", c.in, got, c.want)
			}
			for _, n := range c.not {
				if errors.Is(got, n) {
					t.Fatalf("classify(%v) = %v; must not match %v", c.in, got, n)
				}
			}
		})
	}
	if classify("op", nil) != nil {
		t.Fatal("classify(nil) != nil")
	}
}
