package broker

import (
	"log/slog"

	"golang.org/x/sys/unix"
)

// raiseFileLimit raises the soft limit on open files to the hard limit.
// Every segment of every partition holds a descriptor, so the soft limit
// a shell hands out (often 1024) is what stops a broker from reopening the
// partitions it already holds. The Go runtime raises it too on start-up;
// doing it here makes the limit explicit and logged, and covers brokers
// started in a process that lowered it again.
func raiseFileLimit(logger *slog.Logger) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		logger.Warn("reading the open file limit", "err", err)
		return
	}
	soft := lim.Cur
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			logger.Warn("raising the open file limit", "soft", soft, "hard", lim.Max, "err", err)
			return
		}
	}
	logger.Info("open file limit", "soft_was", soft, "soft", lim.Cur, "hard", lim.Max)
}
