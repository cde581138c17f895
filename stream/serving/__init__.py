"""What a shop is shown and asks for: catalogue, business rules, the request API, the HTTP surface."""
