package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/memory"
	"github.com/sirupsen/logrus"
)

func TestJanitorOnceRemovesExpiredAndRespectsTheLock(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC()
	st := memory.New(memory.Config{Now: func() time.Time { return now }})
	for _, ls := range []*storage.LoginSession{
		{Key: "old", Kind: "public", Subject: "u", ExpiresAt: now.Add(-time.Hour)},
		{Key: "live", Kind: "public", Subject: "u", ExpiresAt: now.Add(time.Hour)},
	} {
		if err := st.CreateLoginSession(ctx, ls); err != nil {
			t.Fatal(err)
		}
	}
	for _, at := range []time.Time{now.Add(-400 * 24 * time.Hour), now.Add(-time.Hour)} {
		if err := st.AppendAudit(ctx, &storage.AuditEvent{Time: at, Event: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	log := logrus.New()
	// Another replica holds the lock: this round does nothing.
	release, ok, err := st.TryLock(ctx, janitorLockName)
	if err != nil || !ok {
		t.Fatal("lock", err)
	}
	if _, _, ran, err := janitorOnce(ctx, st, now, retention{Audit: 365 * 24 * time.Hour}, 10, log); ran || err != nil {
		t.Fatalf("ran=%v err=%v while another replica holds the lock", ran, err)
	}
	release()
	expired, audit, ran, err := janitorOnce(ctx, st, now, retention{Audit: 365 * 24 * time.Hour}, 10, log)
	if err != nil || !ran || expired != 1 || audit != 1 {
		t.Fatalf("expired=%d audit=%d ran=%v err=%v", expired, audit, ran, err)
	}
	if _, err := st.GetLoginSession(ctx, "live"); err != nil {
		t.Fatalf("live session removed: %v", err)
	}
	if _, err := st.GetLoginSession(ctx, "old"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("expired session kept: %v", err)
	}
	events, _ := st.ListAudit(ctx, storage.AuditFilter{})
	if len(events) != 1 {
		t.Fatalf("audit after trim: %d events", len(events))
	}
}
