package postgres_test

import (
	"testing"

	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
	"github.com/bulwark-auth/bulwark/storage/storagetest"
)

// TestConformance runs the one storage conformance suite against Postgres,
// each subtest on a fresh, migrated database.
func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store { return pgtest.NewStore(t) })
}
