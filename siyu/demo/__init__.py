"""The demo company: its history replayed through the sandbox and Siyu's own code, and the live
activity that keeps it moving while the demo runs."""
