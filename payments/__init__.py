"""Payment providers behind `domain.payments.PaymentsProvider` (the domain never imports
a provider's library; this room imports the domain only)."""
