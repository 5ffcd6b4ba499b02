npm ci && npm run demo     # set up (builds the addon from source), train a small tfjs model with EMA
npm ci && npm test         # set up and run every test
