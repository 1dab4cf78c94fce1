"""The agents' workspace (/app): server-rendered French pages over the drafting service."""
