"""The fault suite's tools: a traced app run as real processes, and a ledger that counts its lines."""
