"""The REST API (issue 6): `flexvoice.api.app.api_component` is the node component."""
