package file

// ScanPause exposes scanPause to the external tests.
var ScanPause = scanPause
