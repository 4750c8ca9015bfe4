"""The issuer's HTTPS API and operator console: one ASGI app (FastAPI), served by uvicorn
(`sealcard issuer serve`). Like the CLI it only translates: requests into calls of
`sealcard.parties.issuer`, refusals into HTTP statuses, records into JSON or HTML."""
