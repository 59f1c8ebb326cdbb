"""Where the gateway keeps users, tokens, sessions and profiles: one small protocol, three backends."""
