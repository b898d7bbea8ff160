package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
)

// TestCompleteRedactions_RepeatedIDIsOneRedaction: CompleteRedactions promises one entry per id and a single
// `.redacted` event per session, also when an id is given twice.
func TestCompleteRedactions_RepeatedIDIsOneRedaction(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	s := b.create(t, store.SessionCreate{})
	_, err := b.st.RequestRedaction(ctx, b.sc, s.ID, store.Requester{Type: store.RequestedByRequest, ID: "req_x"}, store.Origin{})
	require.NoError(t, err)
	_, err = b.st.CompleteRedactions(ctx, b.sc, []string{s.ID, s.ID})
	require.NoError(t, err)
	n := 0
	for _, typ := range b.eventTypes(t, s.ID) {
		if typ == store.EventSessionRedacted {
			n++
		}
	}
	require.Equal(t, 1, n, "redacted events of one session")
}
