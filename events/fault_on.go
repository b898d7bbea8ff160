//go:build identityd_faults

package events

import (
	"fmt"
	"os"
)

// FaultHangBeforeFanout is the environment variable that, in a binary built with the identityd_faults tag
// (tests only), makes every fan-out hang for ever right after its events committed, announcing it on stderr.
// The test then SIGKILLs the process: the events are stored and their fan-out never ran.
const FaultHangBeforeFanout = "IDENTITYD_FAULT_HANG_BEFORE_FANOUT"

func init() {
	if os.Getenv(FaultHangBeforeFanout) != "1" {
		return
	}
	beforeFanout = func() {
		fmt.Fprintln(os.Stderr, "identityd fault: events committed; hanging before their fan-out")
		select {}
	}
}
