// Package formattest holds what the tests of persisted formats share:
// golden files compared byte for byte (and rewritten with a test's
// -update flag), the JSON field names of a record type, and the string and
// character constants a package's source declares, so that doc tests can
// check docs/format.md against every name the code uses (a new index kind
// or side file with no row in the doc fails them). It is for tests; no
// broker code imports it.
package formattest
