package pgcluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
)

// FindBin returns the path of a PostgreSQL server program (initdb, postgres,
// pg_ctl). It looks in $PATH first, then in Debian's versioned directories
// /usr/lib/postgresql/N/bin (newest first), which the postgresql package does
// not put on $PATH. A missing program is an error naming the package to
// install, never a silent skip.
func FindBin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("pgcluster: %s not found in $PATH or /usr/lib/postgresql/*/bin: "+
		"install the PostgreSQL server (Debian: apt-get install postgresql) or set PGASYNC_TEST_DSN", name)
}

// versionOf extracts N from /usr/lib/postgresql/N/bin; 0 if it is not a number.
func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}
