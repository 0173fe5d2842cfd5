import { ServiceClientCredentialsFactory } from "botframework-connector";

type Credentials = Awaited<ReturnType<ServiceClientCredentialsFactory["createCredentials"]>>;
type SignableRequest = Parameters<Credentials["signRequest"]>[0];

interface CachedToken {
  token: string;
  expiresAt: number;
}

/**
 * TEST-ONLY outbound credentials: a plain OAuth 2.0 client-credentials grant
 * (`POST {loginUrl}/oauth2/v2.0/token`) against a local login endpoint.
 *
 * botbuilder's own factory goes through MSAL, which refuses plain-http authorities, so
 * an offline test cannot use it. The gateway only picks this factory when
 * TEAMS_LOGIN_URL is plain http on a loopback address, and refuses that outside
 * development and test (see config.ts). Everything else (which app id is valid, the
 * audience and login endpoint botbuilder asks for, token caching) is real.
 */
export class ClientCredentialsFactory extends ServiceClientCredentialsFactory {
  private readonly cache = new Map<string, Promise<CachedToken>>();

  constructor(
    private readonly appId: string,
    private readonly password: string,
  ) {
    super();
  }

  // botbuilder validates an inbound token's audience through this.
  override async isValidAppId(appId: string): Promise<boolean> {
    return appId === this.appId;
  }

  override async isAuthenticationDisabled(): Promise<boolean> {
    return false;
  }

  override async createCredentials(appId: string, audience: string | undefined, loginEndpoint: string): Promise<Credentials> {
    if (appId !== this.appId) throw new Error(`no credentials for app id ${appId}`);
    const scope = `${(audience ?? "https://api.botframework.com").replace(/\/$/, "")}/.default`;
    return {
      signRequest: async (request: SignableRequest) => {
        request.headers.set("authorization", `Bearer ${await this.token(loginEndpoint, scope)}`);
        return request;
      },
    };
  }

  private async token(loginEndpoint: string, scope: string): Promise<string> {
    const key = `${loginEndpoint} ${scope}`;
    const cached = this.cache.get(key);
    if (cached) {
      const t = await cached.catch(() => undefined);
      if (t && t.expiresAt > Date.now() + 60_000) return t.token;
    }
    const fresh = this.fetchToken(loginEndpoint, scope);
    this.cache.set(key, fresh);
    fresh.catch(() => this.cache.delete(key));
    return (await fresh).token;
  }

  private async fetchToken(loginEndpoint: string, scope: string): Promise<CachedToken> {
    const res = await fetch(`${loginEndpoint.replace(/\/$/, "")}/oauth2/v2.0/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "client_credentials", client_id: this.appId, client_secret: this.password, scope }),
      signal: AbortSignal.timeout(10_000),
    });
    const body = (await res.json().catch(() => ({}))) as { access_token?: string; expires_in?: number; error?: string };
    if (!res.ok || !body.access_token) throw new Error(`token endpoint answered ${res.status}${body.error ? ` (${body.error})` : ""}`);
    return { token: body.access_token, expiresAt: Date.now() + (body.expires_in ?? 3600) * 1000 };
  }
}
