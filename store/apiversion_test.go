package store_test

import (
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
)

func TestParseAPIVersion(t *testing.T) {
	t.Parallel()
	// The day the newest known version (2026-10-28.endive) was the latest, plus five weeks.
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

	t.Run("EveryPublishedVersion", func(t *testing.T) {
		t.Parallel()
		require.True(t, sort.StringsAreSorted(store.PublishedAPIVersions), "oldest first")
		seen := map[string]bool{}
		for _, v := range store.PublishedAPIVersions {
			require.False(t, seen[v], "%s listed twice", v)
			seen[v] = true
			got, err := store.ParseAPIVersion(v, now)
			require.NoError(t, err, v)
			require.Equal(t, v, got)
		}
		for _, v := range []string{store.APIVersion, "2022-11-15", "2026-10-28.endive", "2020-08-27"} {
			require.True(t, seen[v], "%s: the default and the SDKs' pinned versions are published", v)
		}
	})

	t.Run("Malformed", func(t *testing.T) {
		t.Parallel()
		for _, v := range []string{"", "latest", "2019-2-19", "2026-02-30", "2026-13-01", "26-03-25.dahlia",
			"2026-03-25.", "2026-03-25.Dahlia", "2026-03-25.dahlia.x", "2026-03-25 .dahlia", "2026-03-25x",
			"2019-05-16, 2019-12-03", "2026-03-25.dahlia1", "+2026-03-25", "2026-03-25.abcdefghijklmnopqrstuvwxyzabcdefgh"} {
			_, err := store.ParseAPIVersion(v, now)
			require.ErrorIs(t, err, store.ErrAPIVersionMalformed, "%q", v)
		}
	})

	t.Run("Unknown", func(t *testing.T) {
		t.Parallel()
		for _, v := range []string{
			"2020-08-28",         // a day Stripe published nothing
			"2025-09-30.acacia",  // the right day on the wrong train
			"2026-03-25.basil",   // the same
			"2024-09-30",         // a named version without its name
			"2026-11-25",         // after 2024-06-20 every version is named
			"2026-01-28.preview", // preview versions are for Stripe's beta SDKs
			"2026-11-25.preview",
			"2026-11-25.dahlia",   // a later day on an earlier train
			"2027-01-27.foxglove", // not published yet on the server's clock
			"2026-12-05.foxglove",
			"2011-01-01",
		} {
			_, err := store.ParseAPIVersion(v, now)
			require.ErrorIs(t, err, store.ErrAPIVersionUnknown, "%q", v)
		}
	})

	t.Run("NewerThanThisBuild", func(t *testing.T) {
		t.Parallel()
		// What an SDK released after this build sends: rendered with the newest shape, answered as sent.
		for _, v := range []string{"2026-11-25.endive", "2026-12-03.foxglove", "2026-12-04.endive"} {
			got, err := store.ParseAPIVersion(v, now)
			require.NoError(t, err, v)
			require.Equal(t, v, got)
		}
	})
}

func TestEvent_In(t *testing.T) {
	t.Parallel()
	ev := &store.Event{ID: "evt_1", Object: "event", APIVersion: store.APIVersion, Data: store.EventData{Object: []byte(`{"id":"vs_1"}`)}}
	old := ev.In("2022-11-15")
	require.Equal(t, "2022-11-15", old.APIVersion)
	require.JSONEq(t, `{"id":"vs_1"}`, string(old.Data.Object), "one shape serves every version")
	require.Equal(t, store.APIVersion, ev.APIVersion, "the rendered copy leaves the event as it was")
}
