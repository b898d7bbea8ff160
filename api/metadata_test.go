package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestUpdate_MetadataMergeKeepsTheFiftyKeyLimit(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	var form []string
	for i := range 50 {
		form = append(form, fmt.Sprintf("metadata[k%02d]=v", i))
	}
	vs := b.createSession(t, keyA, "type=document&"+strings.Join(form, "&"))
	before := b.snapshot(t)

	resp := b.post(t, "/v1/identity/verification_sessions/"+vs, "metadata[extra]=v")
	require.Equal(t, http.StatusBadRequest, resp.status, resp.raw)
	require.Equal(t, "metadata", resp.errField("param"))
	requireUnchanged(t, before, b.snapshot(t), "rejected metadata merge")

	// Replacing a key and unsetting one stays within the limit.
	resp = b.post(t, "/v1/identity/verification_sessions/"+vs, "metadata[k00]=&metadata[extra]=v")
	require.Equal(t, http.StatusOK, resp.status, resp.raw)
	meta, _ := resp.body["metadata"].(map[string]any)
	require.Len(t, meta, 50)
}
