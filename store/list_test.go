package store_test

import (
	"context"
	"fmt"
	"math"
	"sort"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
)

// row is what the list model knows about a stored session.
type row struct {
	created int64
	id      string
	status  string
	ref     string
}

// newer orders rows as lists do: newest first by (created, id).
func newer(a, b row) bool {
	if a.created != b.created {
		return a.created > b.created
	}
	return a.id > b.id
}

// model computes the page the store must return: filter, order, cursor, limit, has_more in the direction of
// travel, data newest first. It is written from Stripe's list rules (newest first by created, then id; cursors exclusive), independently of the store's lex bounds.
func model(rows []row, f store.SessionFilter, p store.Page) ([]string, bool) {
	var in []row
	var cursor *row
	for _, r := range rows {
		if r.id == p.StartingAfter || r.id == p.EndingBefore {
			c := r
			cursor = &c
		}
		c := p.Created
		if (f.Status != "" && r.status != f.Status) || (f.ClientReferenceID != "" && r.ref != f.ClientReferenceID) ||
			(c.GT != nil && r.created <= *c.GT) || (c.GTE != nil && r.created < *c.GTE) ||
			(c.LT != nil && r.created >= *c.LT) || (c.LTE != nil && r.created > *c.LTE) {
			continue
		}
		in = append(in, r)
	}
	sort.Slice(in, func(i, j int) bool { return newer(in[i], in[j]) })
	var page []row
	switch {
	case p.StartingAfter != "":
		for _, r := range in {
			if newer(*cursor, r) {
				page = append(page, r)
			}
		}
	case p.EndingBefore != "":
		for _, r := range in {
			if newer(r, *cursor) {
				page = append(page, r)
			}
		}
	default:
		page = in
	}
	hasMore := len(page) > p.Limit
	if hasMore {
		if p.EndingBefore != "" {
			page = page[len(page)-p.Limit:] // the ones right before the cursor
		} else {
			page = page[:p.Limit]
		}
	}
	ids := []string{}
	for _, r := range page {
		ids = append(ids, r.id)
	}
	return ids, hasMore
}

func ids(sessions []*store.Session) []string {
	out := []string{}
	for _, s := range sessions {
		out = append(out, s.ID)
	}
	return out
}

// seedTies creates sessions in bursts that share a `created` second, some canceled, some with a reference.
func seedTies(t *testing.T, b *testBundle, bursts []int) []row {
	t.Helper()
	ctx := context.Background()
	var rows []row
	for i, n := range bursts {
		for j := range n {
			p := store.SessionCreate{}
			ref := ""
			if j%3 != 2 {
				ref = []string{"a", "b"}[j%2]
				p.ClientReferenceID = new(ref)
			}
			sess := b.create(t, p)
			status := store.StatusRequiresInput
			if j%4 == 1 {
				_, _, err := b.st.CancelSession(ctx, b.sc, sess.ID, store.Origin{})
				require.NoError(t, err)
				status = store.StatusCanceled
			}
			rows = append(rows, row{created: sess.Created, id: sess.ID, status: status, ref: ref})
		}
		b.clock.Advance(time.Duration(i+1) * time.Second) // gaps of 1, 2, 3 … seconds
	}
	return rows
}

// jsonIDs is ids for a store.ListSessionsJSON page.
func jsonIDs(sessions []*store.SessionJSON) []string {
	out := []string{}
	for _, s := range sessions {
		out = append(out, s.ID)
	}
	return out
}

func TestList_MatchesModel(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	rows := seedTies(t, b, []int{9, 1, 12, 6})
	sec := func(i int64) *int64 { v := t0.Unix() + i; return &v }
	ranges := map[string]store.CreatedRange{
		"all":        {},
		"gte+1":      {GTE: sec(1)},
		"lte+3":      {LTE: sec(3)},
		"gt0,lt+6":   {GT: sec(0), LT: sec(6)},
		"exact+3":    {GTE: sec(3), LTE: sec(3)},
		"empty":      {GT: sec(3), LT: sec(4)},
		"gte,gt":     {GT: sec(1), GTE: sec(0)},
		"lte,lt":     {LT: sec(3), LTE: sec(6)},
		"wide":       {GTE: sec(-1000), LTE: sec(1000)},
		"beforeAll":  {LT: sec(0)},
		"afterAll":   {GT: sec(6)},
		"exactFirst": {GTE: sec(0), LTE: sec(0)},
	}
	filters := []store.SessionFilter{{}, {Status: store.StatusCanceled}, {Status: store.StatusRequiresInput},
		{ClientReferenceID: "a"}, {ClientReferenceID: "b", Status: store.StatusCanceled}, {ClientReferenceID: "zzz"}}
	// Cursors: first and last of the whole list, both ends of a tie group, and ids whose rows a filter drops.
	sorted := append([]row(nil), rows...)
	sort.Slice(sorted, func(i, j int) bool { return newer(sorted[i], sorted[j]) })
	cursors := []string{""}
	for _, i := range []int{0, 1, 5, 6, 8, 13, 17, 18, len(sorted) - 2, len(sorted) - 1} {
		cursors = append(cursors, sorted[i].id)
	}
	calls := 0
	for rname, cr := range ranges {
		for _, f := range filters {
			for _, limit := range []int{1, 4, 10, 100} {
				for _, cur := range cursors {
					for _, dir := range []string{"starting_after", "ending_before"} {
						if cur == "" && dir == "ending_before" {
							continue
						}
						p := store.Page{Limit: limit, Created: cr}
						if dir == "starting_after" {
							p.StartingAfter = cur
						} else {
							p.EndingBefore = cur
						}
						wantIDs, wantMore := model(rows, f, p)
						got, more, err := b.st.ListSessions(ctx, b.sc, f, p)
						require.NoError(t, err)
						what := fmt.Sprintf("range %s filter %+v limit %d %s=%q", rname, f, limit, dir, cur)
						require.Equal(t, wantIDs, ids(got), what)
						require.Equal(t, wantMore, more, what)
						raw, rawMore, err := b.st.ListSessionsJSON(ctx, b.sc, f, p)
						require.NoError(t, err)
						require.Equal(t, wantIDs, jsonIDs(raw), what+" (JSON)")
						require.Equal(t, wantMore, rawMore, what+" (JSON)")
						calls++
					}
				}
			}
		}
	}
	t.Logf("%d list calls matched the model", calls)
}

func TestList_TiesOnOneSecond(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var all []string
	for range 35 {
		all = append(all, b.create(t, store.SessionCreate{}).ID)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(all))) // one second: newest first is id descending

	t.Run("ForwardWalk", func(t *testing.T) {
		t.Parallel()
		var walked []string
		var mores []bool
		p := store.Page{Limit: 10}
		for {
			got, more, err := b.st.ListSessions(ctx, b.sc, store.SessionFilter{}, p)
			require.NoError(t, err)
			walked = append(walked, ids(got)...)
			mores = append(mores, more)
			if !more {
				break
			}
			p.StartingAfter = got[len(got)-1].ID
		}
		require.Equal(t, all, walked)
		require.Equal(t, []bool{true, true, true, false}, mores)
	})
	t.Run("BackwardWalk", func(t *testing.T) {
		t.Parallel()
		var pages [][]string
		var mores []bool
		p := store.Page{Limit: 10, EndingBefore: all[len(all)-1]}
		for {
			got, more, err := b.st.ListSessions(ctx, b.sc, store.SessionFilter{}, p)
			require.NoError(t, err)
			require.True(t, sort.IsSorted(sort.Reverse(sort.StringSlice(ids(got)))), "data is newest first")
			pages = append(pages, ids(got))
			mores = append(mores, more)
			if !more {
				break
			}
			p.EndingBefore = got[0].ID // the newest of this page
		}
		require.Equal(t, []bool{true, true, true, false}, mores)
		require.Equal(t, all[24:34], pages[0], "first page is the 10 right before the cursor")
		require.Equal(t, all[14:24], pages[1])
		require.Equal(t, all[4:14], pages[2])
		require.Equal(t, all[0:4], pages[3])
	})
	t.Run("FirstAndLastPage", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			p    store.Page
			want []string
			more bool
		}{
			{store.Page{Limit: 1}, all[:1], true},
			{store.Page{Limit: 34}, all[:34], true},
			{store.Page{Limit: 35}, all, false},
			{store.Page{Limit: 100}, all, false},
			{store.Page{}, all[:10], true}, // default limit
			{store.Page{Limit: 100, StartingAfter: all[34]}, []string{}, false},
			{store.Page{Limit: 100, EndingBefore: all[0]}, []string{}, false},
			{store.Page{Limit: 1, StartingAfter: all[33]}, all[34:], false},
			{store.Page{Limit: 1, EndingBefore: all[1]}, all[:1], false},
			{store.Page{Limit: 2, EndingBefore: all[3]}, all[1:3], true},
		} {
			got, more, err := b.st.ListSessions(ctx, b.sc, store.SessionFilter{}, tc.p)
			require.NoError(t, err)
			require.Equal(t, tc.want, ids(got), "%+v", tc.p)
			require.Equal(t, tc.more, more, "%+v", tc.p)
		}
	})
}

func TestList_UnknownCursor(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	own := b.create(t, store.SessionCreate{})
	b.clock.Advance(time.Second)
	other := b.create(t, store.SessionCreate{}) // made in b.sc, then looked for from other scopes
	for _, sc := range []store.Scope{{Account: "acct_other"}, {Account: b.sc.Account, Livemode: true}} {
		for _, p := range []store.Page{{StartingAfter: other.ID}, {EndingBefore: other.ID}} {
			_, _, err := b.st.ListSessions(ctx, sc, store.SessionFilter{}, p)
			require.ErrorIs(t, err, store.ErrNotFound, "a cursor from another account or mode is unknown")
		}
	}
	for _, p := range []store.Page{{StartingAfter: "vs_nope"}, {EndingBefore: "vs_nope"}, {StartingAfter: "vs_nope", Created: store.CreatedRange{GTE: new(int64(0))}}} {
		_, _, err := b.st.ListSessions(ctx, b.sc, store.SessionFilter{Status: store.StatusCanceled}, p)
		require.ErrorIs(t, err, store.ErrNotFound)
	}
	got, _, err := b.st.ListSessions(ctx, b.sc, store.SessionFilter{}, store.Page{StartingAfter: other.ID})
	require.NoError(t, err)
	require.Equal(t, []string{own.ID}, ids(got))
}

func TestList_CreatedBoundsAtTheEdges(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	s := b.create(t, store.SessionCreate{})
	for _, tc := range []struct {
		name string
		r    store.CreatedRange
		want []string
	}{
		{"LtZero", store.CreatedRange{LT: new(int64(0))}, []string{}},
		{"LtZeroWithLte", store.CreatedRange{LT: new(int64(0)), LTE: new(t0.Unix())}, []string{}},
		{"LteNegative", store.CreatedRange{LTE: new(int64(-1))}, []string{}},
		{"GtMaxInt", store.CreatedRange{GT: ptr(int64(math.MaxInt64))}, []string{}},
		{"GteMaxInt", store.CreatedRange{GTE: ptr(int64(math.MaxInt64))}, []string{}},
		{"LtMinInt", store.CreatedRange{LT: ptr(int64(math.MinInt64))}, []string{}},
		{"LteMaxInt", store.CreatedRange{LTE: ptr(int64(math.MaxInt64))}, []string{s.ID}},
		{"LtMaxInt", store.CreatedRange{LT: ptr(int64(math.MaxInt64))}, []string{s.ID}},
		{"GtMinInt", store.CreatedRange{GT: ptr(int64(math.MinInt64))}, []string{s.ID}},
		{"GteNegative", store.CreatedRange{GTE: new(int64(-5))}, []string{s.ID}},
		{"GteBeyondTwelveDigits", store.CreatedRange{GTE: new(int64(1e13))}, []string{}},
		{"LteBeyondTwelveDigits", store.CreatedRange{LTE: new(int64(1e13))}, []string{s.ID}},
		{"Inverted", store.CreatedRange{GTE: new(t0.Unix() + 1), LTE: new(t0.Unix() - 1)}, []string{}},
	} {
		got, more, err := b.st.ListSessions(ctx, b.sc, store.SessionFilter{}, store.Page{Limit: 10, Created: tc.r})
		require.NoError(t, err, tc.name)
		require.Equal(t, tc.want, ids(got), tc.name)
		require.False(t, more, tc.name)
	}
}

func TestListEvents_Pagination(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for i := range 7 {
		s := b.create(t, store.SessionCreate{})
		if i%2 == 0 {
			_, _, err := b.st.CancelSession(ctx, b.sc, s.ID, store.Origin{})
			require.NoError(t, err)
		}
	}
	all, more, err := b.st.ListEvents(ctx, b.sc, store.EventFilter{}, store.Page{Limit: 100})
	require.NoError(t, err)
	require.False(t, more)
	require.Len(t, all, 11)
	for i := 1; i < len(all); i++ {
		require.Greater(t, all[i-1].ID, all[i].ID, "one second: newest first is id descending")
	}
	page, more, err := b.st.ListEvents(ctx, b.sc, store.EventFilter{}, store.Page{Limit: 3, StartingAfter: all[2].ID})
	require.NoError(t, err)
	require.True(t, more)
	require.Equal(t, []string{all[3].ID, all[4].ID, all[5].ID}, []string{page[0].ID, page[1].ID, page[2].ID})
	page, more, err = b.st.ListEvents(ctx, b.sc, store.EventFilter{}, store.Page{Limit: 3, EndingBefore: all[4].ID})
	require.NoError(t, err)
	require.True(t, more)
	require.Equal(t, []string{all[1].ID, all[2].ID, all[3].ID}, []string{page[0].ID, page[1].ID, page[2].ID})

	canceled, _, err := b.st.ListEvents(ctx, b.sc, store.EventFilter{Types: []string{store.EventSessionCanceled}}, store.Page{Limit: 100})
	require.NoError(t, err)
	require.Len(t, canceled, 4)
	both, _, err := b.st.ListEvents(ctx, b.sc, store.EventFilter{Types: []string{store.EventSessionCanceled, store.EventSessionCreated}}, store.Page{Limit: 5})
	require.NoError(t, err)
	require.Len(t, both, 5)
	_, _, err = b.st.ListEvents(ctx, b.sc, store.EventFilter{}, store.Page{StartingAfter: "evt_nope"})
	require.ErrorIs(t, err, store.ErrNotFound)
	_, _, err = b.st.ListEvents(ctx, store.Scope{Account: "acct_other"}, store.EventFilter{}, store.Page{EndingBefore: all[0].ID})
	require.ErrorIs(t, err, store.ErrNotFound)
}

// TestList_SkipsMissingDocuments: index members whose session document is gone (not a state identityd leaves,
// but one a list must survive) are skipped, and the page is refilled from further down the index, in both
// directions, with has_more still right.
func TestList_SkipsMissingDocuments(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var all []string
	for range 30 {
		all = append(all, b.create(t, store.SessionCreate{}).ID)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(all))) // one second: newest first is id descending
	var kept []string
	for i, id := range all {
		if i < 12 || i%3 == 0 { // the twelve newest and every third after: the first page runs dry twice
			require.NoError(t, b.redis.Client.Del(ctx, b.key("vs:"+id)).Err())
			continue
		}
		kept = append(kept, id)
	}
	require.Len(t, kept, 12)
	for _, tc := range []struct {
		p    store.Page
		want []string
		more bool
	}{
		{store.Page{Limit: 3}, kept[:3], true},
		{store.Page{Limit: 12}, kept, false},
		{store.Page{Limit: 11}, kept[:11], true},
		{store.Page{Limit: 5, StartingAfter: kept[4]}, kept[5:10], true},
		{store.Page{Limit: 5, EndingBefore: kept[11]}, kept[6:11], true},
		{store.Page{Limit: 5, EndingBefore: kept[5]}, kept[:5], false},
	} {
		got, more, err := b.st.ListSessions(ctx, b.sc, store.SessionFilter{}, tc.p)
		require.NoError(t, err)
		require.Equal(t, tc.want, ids(got), "%+v", tc.p)
		require.Equal(t, tc.more, more, "%+v", tc.p)
		raw, rawMore, err := b.st.ListSessionsJSON(ctx, b.sc, store.SessionFilter{}, tc.p)
		require.NoError(t, err)
		require.Equal(t, tc.want, jsonIDs(raw), "JSON %+v", tc.p)
		require.Equal(t, tc.more, rawMore, "JSON %+v", tc.p)
	}
}

// TestRangeSessionDocs_LongStretch: one script read of more index entries than Lua can unpack at once (about
// 8,000) still answers every entry, with the documents that exist and nil for the ones that do not.
func TestRangeSessionDocs_LongStretch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	existing := []string{b.create(t, store.SessionCreate{}).ID, b.create(t, store.SessionCreate{}).ID}
	const ghosts = 8100
	members := make([]redis.Z, ghosts)
	for i := range members {
		members[i] = redis.Z{Member: fmt.Sprintf("%012d:vs_ghost%05d", 1_600_000_000, i)}
	}
	require.NoError(t, b.redis.Client.ZAdd(ctx, b.key("ix:vs"), members...).Err())
	ids, docs, err := store.RangeSessionDocs(ctx, b.st, b.sc, ghosts+100)
	require.NoError(t, err)
	require.Len(t, ids, ghosts+len(existing))
	require.Len(t, docs, len(ids))
	found := 0
	for i, id := range ids {
		if docs[i] != nil {
			require.Contains(t, string(docs[i]), `"id":"`+id+`"`)
			found++
		}
	}
	require.Equal(t, len(existing), found)
	require.ElementsMatch(t, existing, ids[:len(existing)], "newest first: the existing sessions are newer than the ghosts")
}
