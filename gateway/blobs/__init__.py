"""Binary objects (embeddings, enrolment audio): a local directory or S3."""
