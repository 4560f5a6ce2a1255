"""The SpiffWorkflow adapter: everything that touches SpiffWorkflow objects lives in this package."""
