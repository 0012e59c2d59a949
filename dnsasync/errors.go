package dnsasync

import (
	"context"
	"errors"
	"net"

	"github.com/yieldio/yieldio/fdpoll"
)

// Every error a lookup returns is a *net.DNSError, so code written for
// net.Resolver keeps working: IsNotFound for a name that does not exist or
// has no records of the type asked, IsTimeout when every try timed out,
// IsTemporary for a server failure or a timeout. A lookup cut short by its
// context wraps the context's error (errors.Is(err, context.Canceled)).
//
// These are the texts of the Err field; they match net's resolver where it
// has one.
const (
	errNoSuchHost        = "no such host"
	errTimeout           = "i/o timeout"
	errServerFailure     = "server misbehaving (SERVFAIL)"
	errServerRefused     = "server misbehaving (REFUSED)"
	errServerMisbehaving = "server misbehaving"
	errFormat            = "server misbehaving (FORMERR)"
	errLameReferral      = "lame referral"
	errCNAMELoop         = "CNAME loop"
	errCNAMETooLong      = "CNAME chain too long"
	errInvalidAddress    = "unrecognized address"
	errBadNetwork        = "unknown network"
	errBadQuery          = "query must hold exactly one question"
	errLoopClosed        = "resolver loop closed"
	errNoServerReachable = "no server reachable"
	errInternal          = "internal error"
	errResolverClosed    = "the resolver's loops are closed"
	errMalformedRecords  = "every record holds an invalid name"
)

// notFound is the error for NXDOMAIN and for a name without records of the
// asked type.
func notFound(name, server string) *net.DNSError {
	return &net.DNSError{Err: errNoSuchHost, Name: name, Server: server, IsNotFound: true}
}

func timeoutError(name, server string) *net.DNSError {
	return &net.DNSError{Err: errTimeout, Name: name, Server: server, IsTimeout: true, IsTemporary: true}
}

// serverError is the error for a server that answered but not usefully.
func serverError(text, name, server string, temporary bool) *net.DNSError {
	return &net.DNSError{Err: text, Name: name, Server: server, IsTemporary: temporary}
}

// contextError reports a lookup ended by its context.
func contextError(err error, name string) *net.DNSError {
	return &net.DNSError{
		Err:         err.Error(),
		Name:        name,
		IsTimeout:   errors.Is(err, context.DeadlineExceeded),
		IsTemporary: errors.Is(err, context.DeadlineExceeded),
		UnwrapErr:   err,
	}
}

// asDNSError converts any error met while resolving name into a
// *net.DNSError, keeping one that already is, with name as its Name.
func asDNSError(err error, name string) error {
	if err == nil {
		return nil
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		if de.Name == name {
			return de
		}
		cp := *de
		cp.Name = name
		return &cp
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return contextError(err, name)
	case errors.Is(err, fdpoll.ErrClosed):
		return &net.DNSError{Err: errLoopClosed, Name: name, UnwrapErr: err}
	}
	var pe *fdpoll.PanicError
	if errors.As(err, &pe) {
		return &net.DNSError{Err: errInternal + ": " + pe.Error(), Name: name, UnwrapErr: err}
	}
	return &net.DNSError{Err: err.Error(), Name: name, UnwrapErr: err}
}
