"""Payment providers: the adapter contract every PSP implements, and the registry of them."""
