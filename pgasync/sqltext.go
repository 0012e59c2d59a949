package pgasync

// opensTransaction reports whether sql starts with BEGIN or START (as in
// START TRANSACTION), after blanks and comments. It is a cheap guard for
// the shared connections, which must stay in autocommit; a transaction
// opened in a way it misses is still caught when the server reports the
// connection inside a transaction.
func opensTransaction(sql string) bool {
	i := skipBlanks(sql)
	return hasWordFold(sql[i:], "begin") || hasWordFold(sql[i:], "start")
}

// skipBlanks returns the index of the first byte of sql that is not white
// space or inside a -- or /* */ comment.
func skipBlanks(sql string) int {
	i := 0
	for i < len(sql) {
		switch c := sql[i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			// Comments nest in PostgreSQL.
			depth := 0
			for i < len(sql) {
				if sql[i] == '/' && i+1 < len(sql) && sql[i+1] == '*' {
					depth++
					i += 2
				} else if sql[i] == '*' && i+1 < len(sql) && sql[i+1] == '/' {
					depth--
					i += 2
					if depth == 0 {
						break
					}
				} else {
					i++
				}
			}
		default:
			return i
		}
	}
	return i
}

// hasWordFold reports whether s starts with the lower-case word w, in any
// case, followed by something that cannot continue an identifier.
func hasWordFold(s, w string) bool {
	if len(s) < len(w) {
		return false
	}
	for i := 0; i < len(w); i++ {
		if s[i]|0x20 != w[i] {
			return false
		}
	}
	if len(s) == len(w) {
		return true
	}
	c := s[len(w)]
	return !(c == '_' || c == '$' || c >= '0' && c <= '9' || c|0x20 >= 'a' && c|0x20 <= 'z' || c >= 0x80)
}
