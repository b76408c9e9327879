package sync

// Progress is told how many steps each target will apply in a run, so a
// terminal can show done/total, rate and ETA (cmd/dirsync's progress bars;
// each step's decision counts as one done). The engine calls Planned once
// per target, from the target's goroutine, when the steps to apply are known
// (after the guard); an implementation must be safe for concurrent use and
// must not block.
type Progress interface {
	Planned(target string, steps int)
}
