"""Few-shot classification (Omniglot, MiniImagenet): its own vocabulary, data and models; the regression core never imports it."""
