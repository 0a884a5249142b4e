// Filled in by the permission test suite.
