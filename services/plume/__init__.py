"""Plume: drafting assistance for French communes, as a multi-tenant API."""
