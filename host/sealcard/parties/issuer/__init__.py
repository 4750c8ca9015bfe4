"""The issuer's use cases, one module per job, for the CLI, the HTTPS API and the console.

- `context`: what every use case needs (records, HSM roles, provider roots, policy) and the
  refusals they raise (typed, each with a reason a person can read).
- `intake`: bulk customers (with their credentials) and bulk orders.
- `access`: staff accounts, sign-in with rate limits, sessions, roles.
- `activation`: a card the customer presents on their own computer gets its sealed blob.
- `cardlife`: loss, cancellation, replacement, and issuer commands relayed by the user's
  computer (PIN reset, terminate).
- `views`: read-only overviews for the console.

Nothing here prints, renders or picks an HTTP status: the callers do.
"""
