package dnsasync

import (
	"bytes"
	"io"
	"math/bits"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// hostsCheckInterval is how often a hosts file is checked for changes.
const hostsCheckInterval = time.Second

// maxHostsFile bounds how much of a hosts file is read.
const maxHostsFile = 16 << 20

// A hostsTable is one parsed version of a hosts file. It is never modified
// once published, so lookups read it without locks.
type hostsTable struct {
	addrs     map[string][]netip.Addr // by name, resolver form
	canonical map[string]string       // name -> first name of its line
	names     map[netip.Addr][]string // by address, resolver form

	// filter has bit hashName(name)>>filterShift set for every name of
	// addrs (at least 8 bits per name): most names that are not listed
	// are told so without a lookup in addrs, from the hash a lookup has
	// computed already.
	filter      []uint64
	filterShift uint
}

// hostsFile is a hosts file kept up to date: a lookup that finds the last
// check older than the interval starts one re-read in the background and
// goes on with the table it has, so no lookup ever waits for the disk.
type hostsFile struct {
	path      string
	interval  time.Duration
	table     atomic.Pointer[hostsTable]
	nextCheck atomic.Int64 // monotonic nanoseconds
	checking  atomic.Bool

	// Touched only by the one goroutine that holds checking.
	stamp  fileStamp
	loaded bool
}

// fileStamp identifies one version of a file.
type fileStamp struct {
	fi    os.FileInfo // nil: the file could not be read
	size  int64
	mtime int64
}

// same reports whether st and o describe one version of one file.
func (st fileStamp) same(o fileStamp) bool {
	if st.fi == nil || o.fi == nil {
		return st.fi == nil && o.fi == nil
	}
	return st.size == o.size && st.mtime == o.mtime && os.SameFile(st.fi, o.fi)
}

func newHostsFile(path string) *hostsFile {
	h := &hostsFile{path: path, interval: hostsCheckInterval}
	h.table.Store(&hostsTable{})
	if path != "" {
		h.reload()
		h.nextCheck.Store(monoNow() + int64(h.interval))
	}
	return h
}

// lookup returns the addresses listed for name, whose hashName is hash.
func (h *hostsFile) lookup(name string, hash uint64, now int64) []netip.Addr {
	h.maybeCheck(now)
	t := h.table.Load()
	if len(t.addrs) == 0 {
		return nil
	}
	if b := hash >> t.filterShift; t.filter[b/64]&(1<<(b%64)) == 0 {
		return nil
	}
	return t.addrs[name]
}

// canonical returns the first name of the line that lists name, or "".
func (h *hostsFile) canonical(name string, now int64) string {
	h.maybeCheck(now)
	return h.table.Load().canonical[name]
}

// lookupAddr returns the names listed for addr.
func (h *hostsFile) lookupAddr(addr netip.Addr, now int64) []string {
	h.maybeCheck(now)
	return h.table.Load().names[addr]
}

func (h *hostsFile) maybeCheck(now int64) {
	if h.path == "" || now < h.nextCheck.Load() || !h.checking.CompareAndSwap(false, true) {
		return
	}
	h.nextCheck.Store(now + int64(h.interval))
	go func() {
		defer h.checking.Store(false)
		h.reload()
	}()
}

// reload re-reads the file if it changed. It is called by one goroutine at
// a time.
func (h *hostsFile) reload() {
	st := statFile(h.path)
	if st.same(h.stamp) && h.loaded {
		return
	}
	h.stamp, h.loaded = st, true
	if st.fi == nil {
		h.table.Store(&hostsTable{})
		return
	}
	f, err := os.Open(h.path)
	if err != nil {
		h.table.Store(&hostsTable{})
		return
	}
	defer f.Close()
	data, _ := readLimited(f, maxHostsFile)
	h.table.Store(parseHosts(data))
}

func statFile(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{fi: fi, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
}

func readLimited(f *os.File, limit int64) ([]byte, error) {
	return io.ReadAll(io.LimitReader(f, limit))
}

// maxHostsLine bounds a hosts file line; longer ones are skipped.
const maxHostsLine = 1 << 16

// parseHosts parses hosts(5) text: "address name [aliases...]" per line,
// '#' starting a comment. Lines with an unparsable address or name are
// skipped.
func parseHosts(data []byte) *hostsTable {
	t := &hostsTable{
		addrs:     make(map[string][]netip.Addr),
		canonical: make(map[string]string),
		names:     make(map[netip.Addr][]string),
	}
	for len(data) > 0 {
		// Line by line; an overlong line is skipped, not the rest of the
		// file.
		var line string
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = string(data[:i]), data[i+1:]
		} else {
			line, data = string(data), nil
		}
		if len(line) > maxHostsLine {
			continue
		}
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		addr, err := netip.ParseAddr(f[0])
		if err != nil {
			continue
		}
		addr = addr.Unmap()
		var first string
		for _, n := range f[1:] {
			name, _, err := normalize(n)
			if err != nil {
				continue
			}
			if first == "" {
				first = name
			}
			if _, ok := t.canonical[name]; !ok {
				t.canonical[name] = first
			}
			if !containsAddr(t.addrs[name], addr) {
				t.addrs[name] = append(t.addrs[name], addr)
			}
			if !containsString(t.names[addr], name) {
				t.names[addr] = append(t.names[addr], name)
			}
		}
	}
	nbits := 64
	for nbits < 8*len(t.addrs) {
		nbits *= 2
	}
	t.filter = make([]uint64, nbits/64)
	t.filterShift = uint(64 - bits.Len(uint(nbits-1)))
	for name := range t.addrs {
		b := hashName(name) >> t.filterShift
		t.filter[b/64] |= 1 << (b % 64)
	}
	return t
}

func containsAddr(s []netip.Addr, a netip.Addr) bool {
	for _, x := range s {
		if x == a {
			return true
		}
	}
	return false
}

func containsString(s []string, a string) bool {
	for _, x := range s {
		if x == a {
			return true
		}
	}
	return false
}
