package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
)

func TestDeliverySlots(t *testing.T) {
	t.Parallel()
	lim := store.DeliveryLimits{EndpointSlots: 2, AccountSlots: 3, Lease: 30 * time.Second,
		BreakerThreshold: 3, BreakerCooldown: time.Minute}
	sc := store.Scope{Account: "acct_slots"}
	setup := func(t *testing.T) (*store.Store, *storetest.FakeClock) {
		t.Helper()
		clock := storetest.NewFakeClock(time.Unix(1_800_000_000, 0))
		return storetest.New(t).Store(clock), clock
	}
	admit := func(t *testing.T, st *store.Store, ep string) store.Admission {
		t.Helper()
		a, err := st.AdmitDelivery(context.Background(), sc, ep, lim)
		require.NoError(t, err)
		return a
	}
	release := func(t *testing.T, st *store.Store, ep string, a store.Admission, o store.DialOutcome) bool {
		t.Helper()
		opened, err := st.ReleaseDelivery(context.Background(), sc, ep, a, o, lim)
		require.NoError(t, err)
		return opened
	}

	t.Run("EndpointLimit", func(t *testing.T) {
		t.Parallel()
		st, _ := setup(t)
		a1, a2 := admit(t, st, "we_a"), admit(t, st, "we_a")
		require.Equal(t, store.Admitted, a1.Code)
		require.Equal(t, store.Admitted, a2.Code)
		busy := admit(t, st, "we_a")
		require.Equal(t, store.EndpointBusy, busy.Code)
		require.Equal(t, 30*time.Second, busy.Wait, "until the oldest permit's lease ends at the latest")
		held, err := st.DeliverySlotsHeld(context.Background(), sc, "we_a")
		require.NoError(t, err)
		require.Equal(t, 2, held)

		require.False(t, release(t, st, "we_a", a1, store.Answered))
		require.Equal(t, store.Admitted, admit(t, st, "we_a").Code, "a released permit is free again")
	})

	t.Run("AccountLimit", func(t *testing.T) {
		t.Parallel()
		st, _ := setup(t)
		for _, ep := range []string{"we_a", "we_a", "we_b"} {
			require.Equal(t, store.Admitted, admit(t, st, ep).Code)
		}
		require.Equal(t, store.AccountBusy, admit(t, st, "we_c").Code, "the account holds its limit")
		other := store.Scope{Account: "acct_other"}
		a, err := st.AdmitDelivery(context.Background(), other, "we_c", lim)
		require.NoError(t, err)
		require.Equal(t, store.Admitted, a.Code, "another account has slots of its own")
	})

	t.Run("LeaseEndsAPermitItsHolderNeverReleased", func(t *testing.T) {
		t.Parallel()
		st, clock := setup(t)
		admit(t, st, "we_a")
		admit(t, st, "we_a") // both holders "die": nobody releases them
		require.Equal(t, store.EndpointBusy, admit(t, st, "we_a").Code)
		clock.Advance(lim.Lease + time.Millisecond)
		require.Equal(t, store.Admitted, admit(t, st, "we_a").Code)
	})

	t.Run("BreakerOpensThenProbesThenCloses", func(t *testing.T) {
		t.Parallel()
		st, clock := setup(t)
		for i := range lim.BreakerThreshold {
			a := admit(t, st, "we_hung")
			require.Equal(t, store.Admitted, a.Code)
			require.Equal(t, i == lim.BreakerThreshold-1, release(t, st, "we_hung", a, store.Unreachable),
				"the circuit opens at the threshold, not before")
		}
		open := admit(t, st, "we_hung")
		require.Equal(t, store.CircuitOpen, open.Code)
		require.Equal(t, lim.BreakerCooldown, open.Wait)
		require.Equal(t, store.Admitted, admit(t, st, "we_ok").Code, "other endpoints are not affected")

		clock.Advance(lim.BreakerCooldown)
		probe := admit(t, st, "we_hung")
		require.Equal(t, store.AdmittedProbe, probe.Code, "after the cool-down one probe goes through")
		require.Equal(t, store.CircuitOpen, admit(t, st, "we_hung").Code, "and only one")
		require.True(t, release(t, st, "we_hung", probe, store.Unreachable), "a failed probe reopens the circuit")
		require.Equal(t, store.CircuitOpen, admit(t, st, "we_hung").Code)

		clock.Advance(lim.BreakerCooldown)
		probe = admit(t, st, "we_hung")
		require.Equal(t, store.AdmittedProbe, probe.Code)
		require.False(t, release(t, st, "we_hung", probe, store.Answered))
		a := admit(t, st, "we_hung")
		require.Equal(t, store.Admitted, a.Code, "an answer closes the circuit")
		require.False(t, release(t, st, "we_hung", a, store.Unreachable), "and starts the count again")
	})

	t.Run("AnAnswerResetsTheCount", func(t *testing.T) {
		t.Parallel()
		st, _ := setup(t)
		for range 2 * lim.BreakerThreshold {
			a := admit(t, st, "we_flaky")
			require.False(t, release(t, st, "we_flaky", a, store.Unreachable))
			a = admit(t, st, "we_flaky")
			require.False(t, release(t, st, "we_flaky", a, store.Answered))
		}
	})

	t.Run("ProbeHolderKilled", func(t *testing.T) {
		t.Parallel()
		st, clock := setup(t)
		for range lim.BreakerThreshold {
			release(t, st, "we_hung", admit(t, st, "we_hung"), store.Unreachable)
		}
		clock.Advance(lim.BreakerCooldown)
		require.Equal(t, store.AdmittedProbe, admit(t, st, "we_hung").Code) // never released
		clock.Advance(lim.Lease)
		require.Equal(t, store.AdmittedProbe, admit(t, st, "we_hung").Code, "a lost probe's lease ends too")
	})
}
