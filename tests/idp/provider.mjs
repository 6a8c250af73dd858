// A real OpenID provider for the integration tests: oidc-provider (a
// certified implementation) on a loopback port, with back-channel logout.
// Usage: node provider.mjs PORT KID BACKCHANNEL_LOGOUT_URI [SENT_LOG]
// The provider signs with a fresh RS256 key (2048 bits) named KID: started
// again with another KID, it has rotated its keys (the old one is gone). Logins
// are automatic: /auth?login_hint=<user> signs <user> in and consents, so
// a test gets an ID token without a browser. Ending a session is the
// provider's own RP-initiated logout (/session/end, then its confirm form),
// which sends a logout token to each client's back-channel logout URI
// (each one also appended to SENT_LOG, when given, so a test can replay it).
// Prints "ready <issuer>" once listening.
import crypto from 'node:crypto';
import fs from 'node:fs';
import Provider from 'oidc-provider';

const [port, kid, backchannelUri, sentLog] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwks = { keys: [{ ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' }] };
const redirect = 'http://127.0.0.1:9/callback';
const client = (id, sessionRequired) => ({
  client_id: id,
  client_secret: `${id}-secret-0123456789abcdef`,
  redirect_uris: [redirect],
  post_logout_redirect_uris: [redirect],
  response_types: ['code'],
  grant_types: ['authorization_code'],
  backchannel_logout_uri: backchannelUri,
  backchannel_logout_session_required: sessionRequired,
});

const provider = new Provider(issuer, {
  // `web` gets logout tokens with sid, `mobile` with sub only.
  clients: [client('web', true), client('mobile', false)],
  jwks,
  cookies: { keys: ['sessiongate-test-cookie-key'] },
  pkce: { required: () => false },
  features: {
    devInteractions: { enabled: false },
    backchannelLogout: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      logoutSource: async (ctx, form) => {
        ctx.body = `<!doctype html><html><body>${form}</body></html>`;
      },
    },
  },
  claims: { openid: ['sub'] },
  // The provider refuses to call special-use addresses (SSRF protection);
  // here the gateway's back-channel logout URI is on loopback on purpose.
  fetch: (url, options) => {
    const { dispatcher, ...rest } = options;
    if (sentLog && rest.body instanceof URLSearchParams && rest.body.has('logout_token')) {
      fs.appendFileSync(sentLog, `${rest.body.get('logout_token')}\n`);
    }
    return globalThis.fetch(url, rest);
  },
  findAccount: async (ctx, id) => ({ accountId: id, claims: async () => ({ sub: id }) }),
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  ttl: { IdToken: 3600, Session: 3600, Interaction: 600, Grant: 3600, AuthorizationCode: 60 },
});

// Signs the login_hint in and consents to openid, at once.
provider.use(async (ctx, next) => {
  const m = ctx.path.match(/^\/interaction\/([^/]+)$/);
  if (!m) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  let result;
  if (details.prompt.name === 'login') {
    result = { login: { accountId: details.params.login_hint || 'alice' } };
  } else {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    grant.addOIDCScope('openid');
    result = { consent: { grantId: await grant.save() } };
  }
  const to = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
  ctx.status = 303;
  ctx.set('location', to);
});

provider.on('backchannel.error', (client, err) => console.error('backchannel.error', client.clientId, err.message));

const server = provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
