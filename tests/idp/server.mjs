// A real OpenID Connect provider (panva/oidc-provider) for hookjail's tests, on plain http loopback.
//
// Configured from the environment:
//   IDP_PORT            port to listen on (127.0.0.1 only)
//   IDP_CLIENT_ID       the one confidential client (client_secret_basic)
//   IDP_CLIENT_SECRET
//   IDP_REDIRECT_URIS   space-separated redirect URIs registered for that client
//
// Development interactions accept any login and password. The login becomes the account id:
//   "alice"                 -> email alice@example.com
//   "bob@corp.example.com"  -> email bob@corp.example.com
// and the user id claims (sub, preferred_username) are the login's local part.
// A login may end with ";claim=value" pairs that override claims ("true"/"false" become booleans), e.g.
//   "mallory;preferred_username=alice"            -> sub mallory, but preferred_username alice
//   "boss@admin.example.com;email_verified=false" -> an email the provider says is not verified
// Prints "ready <issuer>" on stdout once it listens.
import Provider from 'oidc-provider';

const port = Number(process.env.IDP_PORT);
const host = '127.0.0.1';
const issuer = `http://${host}:${port}`;

function claimsFor(account) {
  const [login, ...overrides] = account.split(';');
  const [local, domain] = login.includes('@') ? login.split('@', 2) : [login, 'example.com'];
  const given = local.charAt(0).toUpperCase() + local.slice(1);
  const changed = {};
  for (const pair of overrides) {
    const at = pair.indexOf('=');
    const value = pair.slice(at + 1);
    changed[pair.slice(0, at)] = value === 'true' ? true : value === 'false' ? false : value;
  }
  return {
    sub: local,
    preferred_username: local,
    email: `${local}@${domain}`,
    email_verified: true,
    name: `${given} Tester`,
    given_name: given,
    family_name: 'Tester',
    picture: `${issuer}/pictures/${local}.png`,
    ...changed,
  };
}

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.IDP_CLIENT_ID,
    client_secret: process.env.IDP_CLIENT_SECRET,
    redirect_uris: (process.env.IDP_REDIRECT_URIS || '').split(' ').filter(Boolean),
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  scopes: ['openid', 'email', 'profile'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name', 'picture', 'preferred_username'],
  },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() { return claimsFor(id); },
    };
  },
});

const server = provider.listen(port, host, () => {
  process.stdout.write(`ready ${issuer}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
