package storagetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
)

// backchannelTests: the outbox of OpenID Connect Back-Channel Logout. RP
// sessions are recorded only against live login sessions, every ended RP
// session is queued exactly once and only with the transaction that ended
// it, and leases hand each due row to exactly one worker at a time.
var backchannelTests = []test{
	{"backchannel/join-needs-a-live-session-with-sid", func(t *testing.T, s storage.Store) {
		createRP(t, s, "a", true)
		_, err := s.JoinLoginSession(ctx(t), "nope", "a")
		wantErr(t, err, storage.ErrNotFound)
		createLogin(t, s, "no-sid", "alice", "", time.Hour)
		_, err = s.JoinLoginSession(ctx(t), "no-sid", "a")
		wantErr(t, err, storage.ErrNotFound)
		createLogin(t, s, "old", "alice", "sid-old", -time.Minute)
		_, err = s.JoinLoginSession(ctx(t), "old", "a")
		wantErr(t, err, storage.ErrNotFound)
		createLogin(t, s, "k1", "alice", "sid-1", time.Hour)
		for range 2 { // joining twice is one RP session
			sid, err := s.JoinLoginSession(ctx(t), "k1", "a")
			must(t, err)
			wantEqual(t, "sid", "sid-1", sid)
		}
		n, err := s.QueueLogouts(ctx(t), storage.LogoutMatch{SID: "sid-1"})
		must(t, err)
		wantEqual(t, "queued", int64(1), n)
	}},
	{"backchannel/queue-one-session", func(t *testing.T, s storage.Store) {
		createRP(t, s, "req", true)
		createRP(t, s, "opt", false)
		none := createClient(t, s, "none")
		none.BackchannelLogoutURI, none.BackchannelLogoutSessionRequired = "", false
		must(t, s.UpdateClient(ctx(t), none, none.Version))
		createLogin(t, s, "k1", "alice", "sid-1", time.Hour)
		createLogin(t, s, "k2", "alice", "sid-2", time.Hour)
		for _, c := range []string{"req", "opt", "none"} {
			join(t, s, "k1", c)
		}
		join(t, s, "k2", "req")

		n, err := s.QueueLogouts(ctx(t), storage.LogoutMatch{SID: "sid-1", Reason: "logout"})
		must(t, err)
		wantEqual(t, "queued", int64(2), n)
		got := claimAll(t, s)
		// One session ending names its sid to every client, required or not.
		wantEqual(t, "rows", []string{"opt alice sid-1 logout", "req alice sid-1 logout"}, describe(got))
		for _, l := range got {
			if l.JTI == "" || l.CreatedAt.IsZero() || l.Attempts != 0 {
				t.Fatalf("row %+v", l)
			}
		}
		if got[0].JTI == got[1].JTI {
			t.Fatal("two logouts share a jti")
		}
		// Ended sessions are gone (the client without a URI too); the other
		// session is untouched.
		n, err = s.QueueLogouts(ctx(t), storage.LogoutMatch{SID: "sid-1"})
		must(t, err)
		wantEqual(t, "queued again", int64(0), n)
		n, err = s.QueueLogouts(ctx(t), storage.LogoutMatch{Subject: "alice", ClientID: "none"})
		must(t, err)
		wantEqual(t, "queued for the client without URI", int64(0), n)
		n, err = s.QueueLogouts(ctx(t), storage.LogoutMatch{SID: "sid-2"})
		must(t, err)
		wantEqual(t, "queued for the other session", int64(1), n)
	}},
	{"backchannel/queue-user-wide", func(t *testing.T, s storage.Store) {
		createRP(t, s, "req", true)
		createRP(t, s, "opt", false)
		createLogin(t, s, "k1", "alice", "sid-1", time.Hour)
		createLogin(t, s, "k2", "alice", "sid-2", time.Hour)
		createLogin(t, s, "k3", "bob", "sid-3", time.Hour)
		for _, k := range []string{"k1", "k2", "k3"} {
			join(t, s, k, "req")
			join(t, s, k, "opt")
		}
		n, err := s.QueueLogouts(ctx(t), storage.LogoutMatch{Subject: "alice", Reason: "user_disabled"})
		must(t, err)
		wantEqual(t, "queued", int64(3), n)
		// The client requiring sid hears of each session; the other gets
		// one logout for the subject.
		wantEqual(t, "rows", []string{"opt alice  user_disabled", "req alice sid-1 user_disabled", "req alice sid-2 user_disabled"},
			describe(claimAll(t, s)))
		n, err = s.QueueLogouts(ctx(t), storage.LogoutMatch{Subject: "bob", ClientID: "opt", Reason: "consent_revoked"})
		must(t, err)
		wantEqual(t, "queued for one client", int64(1), n)
		wantEqual(t, "rows", []string{"opt bob  consent_revoked"}, describe(claimAll(t, s)))
		n, err = s.QueueLogouts(ctx(t), storage.LogoutMatch{})
		must(t, err)
		wantEqual(t, "empty match", int64(0), n)
		n, err = s.QueueLogouts(ctx(t), storage.LogoutMatch{ClientID: "req"})
		must(t, err)
		wantEqual(t, "client-only match", int64(0), n)
		n, err = s.QueueLogouts(ctx(t), storage.LogoutMatch{Subject: "bob"})
		must(t, err)
		wantEqual(t, "bob's remaining session", int64(1), n)
	}},
	{"backchannel/queue-commits-with-the-transaction", func(t *testing.T, s storage.Store) {
		createRP(t, s, "a", true)
		createLogin(t, s, "k1", "alice", "sid-1", time.Hour)
		join(t, s, "k1", "a")
		tctx, err := s.BeginTX(ctx(t))
		must(t, err)
		must(t, s.DeleteLoginSession(tctx, "k1"))
		n, err := s.QueueLogouts(tctx, storage.LogoutMatch{SID: "sid-1"})
		must(t, err)
		wantEqual(t, "queued in tx", int64(1), n)
		must(t, s.Rollback(tctx))
		pending(t, s, 0)
		// Rolled back: the session and its RP session are still there.
		if _, err := s.GetLoginSession(ctx(t), "k1"); err != nil {
			t.Fatalf("login session after rollback: %v", err)
		}
		ch, err := s.Subscribe(ctx(t), storage.BackchannelChannel)
		must(t, err)
		tctx, err = s.BeginTX(ctx(t))
		must(t, err)
		must(t, s.DeleteLoginSession(tctx, "k1"))
		_, err = s.QueueLogouts(tctx, storage.LogoutMatch{SID: "sid-1"})
		must(t, err)
		must(t, s.Commit(tctx))
		pending(t, s, 1)
		select {
		case p := <-ch:
			wantEqual(t, "payload", storage.BackchannelQueued, p)
		case <-time.After(30 * time.Second):
			t.Fatal("no announcement on the back-channel channel after commit")
		}
	}},
	{"backchannel/queue-race", func(t *testing.T, s storage.Store) {
		for i := range 5 {
			createRP(t, s, fmt.Sprintf("c%d", i), true)
		}
		for j := range 4 {
			k := fmt.Sprintf("k%d", j)
			createLogin(t, s, k, "alice", "sid-"+k, time.Hour)
			for i := range 5 {
				join(t, s, k, fmt.Sprintf("c%d", i))
			}
		}
		res := Together(racers, func(i int) error {
			m := storage.LogoutMatch{Subject: "alice"}
			if i%2 == 1 {
				m = storage.LogoutMatch{SID: "sid-k1"}
			}
			_, err := s.QueueLogouts(ctx(t), m)
			return err
		})
		for _, err := range res {
			must(t, err)
		}
		rows := claimAll(t, s)
		seen := map[string]bool{}
		for _, d := range describe(rows) {
			if seen[d] {
				t.Fatalf("queued twice: %s", d)
			}
			seen[d] = true
		}
		wantEqual(t, "rows", 20, len(rows))
	}},
	{"backchannel/join-races-logout", func(t *testing.T, s storage.Store) {
		// Clients joining a login session while it is being logged out:
		// every join that succeeded is queued, the others fail.
		const clients = 10
		for i := range clients {
			createRP(t, s, fmt.Sprintf("c%d", i), true)
		}
		createLogin(t, s, "k1", "alice", "sid-1", time.Hour)
		res := Together(clients+1, func(i int) error {
			if i < clients {
				_, err := s.JoinLoginSession(ctx(t), "k1", fmt.Sprintf("c%d", i))
				return err
			}
			return endLoginSession(t, s, "k1", "sid-1")
		})
		must(t, res[clients])
		var joined []string
		for i, err := range res[:clients] {
			switch {
			case err == nil:
				joined = append(joined, fmt.Sprintf("c%d alice sid-1 ", i))
			case !errors.Is(err, storage.ErrNotFound):
				t.Fatalf("join %d: %v", i, err)
			}
		}
		slices.Sort(joined)
		wantEqual(t, "queued = joined", joined, describe(claimAll(t, s)))
		n, err := s.QueueLogouts(ctx(t), storage.LogoutMatch{Subject: "alice"})
		must(t, err)
		wantEqual(t, "left behind", int64(0), n)
	}},
	{"backchannel/lease", func(t *testing.T, s storage.Store) {
		createRP(t, s, "a", true)
		createLogin(t, s, "k1", "alice", "sid-1", time.Hour)
		join(t, s, "k1", "a")
		_, err := s.QueueLogouts(ctx(t), storage.LogoutMatch{SID: "sid-1"})
		must(t, err)
		got, err := s.ClaimLogouts(ctx(t), "L1", now().Add(time.Hour), 10)
		must(t, err)
		wantEqual(t, "claimed", 1, len(got))
		if got[0].Lease != "L1" || got[0].LeaseUntil.IsZero() {
			t.Fatalf("claimed row %+v", got[0])
		}
		id := got[0].ID
		again, err := s.ClaimLogouts(ctx(t), "L2", now().Add(time.Hour), 10)
		must(t, err)
		wantEqual(t, "claimed while leased", 0, len(again))
		for _, lease := range []string{"L2", ""} {
			ok, err := s.FinishLogout(ctx(t), id, lease)
			must(t, err)
			wantEqual(t, "finish with lease "+lease, false, ok)
			ok, err = s.ReleaseLogout(ctx(t), id, lease, now(), "x")
			must(t, err)
			wantEqual(t, "release with lease "+lease, false, ok)
		}
		// A failure: counted, kept, due later.
		ok, err := s.ReleaseLogout(ctx(t), id, "L1", now().Add(time.Hour), "status 503")
		must(t, err)
		wantEqual(t, "released", true, ok)
		later, err := s.ClaimLogouts(ctx(t), "L3", now().Add(time.Hour), 10)
		must(t, err)
		wantEqual(t, "claimed before due", 0, len(later))
		pending(t, s, 1)
		// A deferral (no failure): due now, attempts unchanged. Only the
		// current lease may release, and L1 no longer holds it.
		ok, err = s.ReleaseLogout(ctx(t), id, "L1", now(), "")
		must(t, err)
		wantEqual(t, "release by a former holder", false, ok)
	}},
	{"backchannel/expired-lease-is-due-again", func(t *testing.T, s storage.Store) {
		createRP(t, s, "a", true)
		createLogin(t, s, "k1", "alice", "sid-1", time.Hour)
		join(t, s, "k1", "a")
		_, err := s.QueueLogouts(ctx(t), storage.LogoutMatch{SID: "sid-1"})
		must(t, err)
		// A worker that died: its lease ends without it finishing.
		first, err := s.ClaimLogouts(ctx(t), "dead", now().Add(-time.Second), 10)
		must(t, err)
		wantEqual(t, "claimed", 1, len(first))
		second, err := s.ClaimLogouts(ctx(t), "alive", now().Add(time.Hour), 10)
		must(t, err)
		wantEqual(t, "reclaimed", 1, len(second))
		wantEqual(t, "same jti", first[0].JTI, second[0].JTI)
		ok, err := s.FinishLogout(ctx(t), first[0].ID, "dead")
		must(t, err)
		wantEqual(t, "finish by the dead lease", false, ok)
		ok, err = s.ReleaseLogout(ctx(t), second[0].ID, "alive", now().Add(-time.Second), "status 500")
		must(t, err)
		wantEqual(t, "release", true, ok)
		third, err := s.ClaimLogouts(ctx(t), "next", now().Add(time.Hour), 10)
		must(t, err)
		if len(third) != 1 || third[0].Attempts != 1 || third[0].LastError != "status 500" {
			t.Fatalf("after a failure: %+v", third)
		}
		ok, err = s.FinishLogout(ctx(t), third[0].ID, "next")
		must(t, err)
		wantEqual(t, "finish", true, ok)
		pending(t, s, 0)
	}},
	{"backchannel/claim-race", func(t *testing.T, s storage.Store) {
		createRP(t, s, "a", true)
		const rows = 12
		for i := range rows {
			k := fmt.Sprintf("k%d", i)
			createLogin(t, s, k, "alice", "sid-"+k, time.Hour)
			join(t, s, k, "a")
		}
		_, err := s.QueueLogouts(ctx(t), storage.LogoutMatch{Subject: "alice"})
		must(t, err)
		res := Together(racers, func(i int) []*storage.BackchannelLogout {
			got, err := s.ClaimLogouts(ctx(t), fmt.Sprintf("lease-%d", i), now().Add(time.Hour), 3)
			if err != nil {
				t.Error(err)
			}
			return got
		})
		ids := map[int64]string{}
		for i, got := range res {
			for _, l := range got {
				if prev, dup := ids[l.ID]; dup {
					t.Fatalf("row %d claimed by %s and lease-%d", l.ID, prev, i)
				}
				ids[l.ID] = l.Lease
			}
		}
		wantEqual(t, "claimed rows", rows, len(ids))
	}},
	{"backchannel/janitor-removes-expired-rp-sessions", func(t *testing.T, s storage.Store) {
		createRP(t, s, "a", true)
		createLogin(t, s, "k1", "alice", "sid-1", time.Hour)
		join(t, s, "k1", "a")
		_, err := s.DeleteExpired(ctx(t), now().Add(2*time.Hour), 100)
		must(t, err)
		n, err := s.QueueLogouts(ctx(t), storage.LogoutMatch{Subject: "alice"})
		must(t, err)
		wantEqual(t, "queued after expiry", int64(0), n)
	}},
}

// createRP registers a client with a back-channel logout URI.
func createRP(t *testing.T, s storage.Store, id string, sessionRequired bool) {
	t.Helper()
	c := newClient(id)
	c.BackchannelLogoutSessionRequired = sessionRequired
	must(t, s.CreateClient(ctx(t), c))
}

func createLogin(t *testing.T, s storage.Store, key, subject, sid string, ttl time.Duration) {
	t.Helper()
	t0 := now()
	must(t, s.CreateLoginSession(ctx(t), &storage.LoginSession{
		Key: key, Kind: "public", Subject: subject, SID: sid, AuthTime: t0, LastSeen: t0, ExpiresAt: t0.Add(ttl),
	}))
}

func join(t *testing.T, s storage.Store, key, client string) {
	t.Helper()
	_, err := s.JoinLoginSession(ctx(t), key, client)
	must(t, err)
}

func pending(t *testing.T, s storage.Store, want int64) {
	t.Helper()
	n, err := s.PendingLogouts(ctx(t))
	must(t, err)
	wantEqual(t, "pending logouts", want, n)
}

// claimAll claims every due row and finishes it.
func claimAll(t *testing.T, s storage.Store) []*storage.BackchannelLogout {
	t.Helper()
	got, err := s.ClaimLogouts(ctx(t), "all", now().Add(time.Hour), 1000)
	must(t, err)
	for _, l := range got {
		ok, err := s.FinishLogout(ctx(t), l.ID, "all")
		must(t, err)
		if !ok {
			t.Fatalf("finish %d", l.ID)
		}
	}
	return got
}

// describe renders rows as sorted "client subject sid reason" lines.
func describe(rows []*storage.BackchannelLogout) []string {
	out := make([]string, 0, len(rows))
	for _, l := range rows {
		out = append(out, l.ClientID+" "+l.Subject+" "+l.SID+" "+l.Reason)
	}
	slices.Sort(out)
	return out
}

// endLoginSession is a logout: the login session deleted and its relying
// parties' logouts queued in one transaction (server/backchannel's
// EndLoginSession, on the store).
func endLoginSession(t *testing.T, s storage.Store, key, sid string) error {
	tctx, err := s.BeginTX(ctx(t))
	if err != nil {
		return err
	}
	if err := s.DeleteLoginSession(tctx, key); err != nil {
		_ = s.Rollback(tctx)
		return err
	}
	if _, err := s.QueueLogouts(tctx, storage.LogoutMatch{SID: sid}); err != nil {
		_ = s.Rollback(tctx)
		return err
	}
	return s.Commit(tctx)
}
