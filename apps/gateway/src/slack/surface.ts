import type { Logger } from "@countersign/core";
import { chatCards, type ServiceDeps } from "@countersign/services";
import { App, type Logger as BoltLogger, ExpressReceiver, SocketModeReceiver } from "@slack/bolt";
import { WebClient, type WebClientOptions } from "@slack/web-api";
import { boltLogger } from "../logger.ts";
import type { ChatSurface } from "../surface.ts";
import { guardedSlackRouter } from "./guard.ts";
import { type HomeTeam, SlackDirectory } from "./identity.ts";
import { registerInteractions } from "./interactions.ts";
import type { CardSender } from "./jobs.ts";
import { slackJobHandlers } from "./jobs.ts";

export const SLACK_EVENTS_PATH = "/slack/events";

export interface SlackConfig {
  botToken: string;
  signingSecret: string;
  /** Socket Mode (xapp-...): no public URL needed, and no HTTP route is mounted. */
  appToken?: string | undefined;
  /** Web API base URL: GovSlack (https://slack-gov.com/api/) or a test fake. */
  apiUrl?: string | undefined;
}

/**
 * The Slack surface: Bolt on the gateway's own express app (or a Socket Mode
 * connection), and the outbox handlers that post and update cards.
 */
export function createSlackSurface(config: SlackConfig, deps: ServiceDeps, parentLog: Logger): ChatSurface {
  const log = parentLog.child({ component: "slack" });
  const logger = boltLogger(log) as unknown as BoltLogger;
  // 429s are not retried inside the client: the call fails at once with Retry-After, and
  // the outbox reschedules the job, so one slow channel never blocks the rest.
  const clientOptions: WebClientOptions = {
    ...(config.apiUrl ? { slackApiUrl: config.apiUrl } : {}),
    logger,
    rejectRateLimitedCalls: true,
    retryConfig: { retries: 0 },
    timeout: 10_000,
    allowAbsoluteUrls: false,
  };
  const web = new WebClient(config.botToken, clientOptions);
  const cards = chatCards(deps.db);

  let home: Promise<HomeTeam> | undefined;
  const homeTeam = (): Promise<HomeTeam> => {
    home ??= web.auth.test().then(
      (r) => ({ teamId: r.team_id, enterpriseId: r.enterprise_id }),
      (e: unknown) => {
        home = undefined;
        throw e;
      },
    );
    return home;
  };

  const directory = new SlackDirectory({
    lookup: async (user) => (await web.users.info({ user })).user,
    home: homeTeam,
  });

  const socketMode = Boolean(config.appToken);
  const receiver = config.appToken
    ? new SocketModeReceiver({ appToken: config.appToken, logger, installerOptions: { clientOptions } })
    : new ExpressReceiver({
        signingSecret: config.signingSecret,
        // Mounted at /slack/events by the gateway, ahead of every body parser.
        endpoints: "/",
        logger,
        processBeforeResponse: false,
        unhandledRequestTimeoutMillis: 3001,
        bodyLimit: "1mb",
      });

  // A fixed authorization: no auth.test per event, and none in the constructor, so a
  // Slack outage at boot cannot stop the gateway.
  const app = new App({
    receiver,
    authorize: async () => ({ botToken: config.botToken }),
    logger,
    clientOptions,
    ignoreSelf: false,
    convoStore: false,
  });
  app.error(async (err) => {
    log.error("slack: unhandled error in a listener", { err });
  });

  registerInteractions(app, {
    deps,
    cards,
    directory,
    log,
    api: {
      ephemeral: async (channel, user, text) => {
        await web.chat.postEphemeral({ channel, user, text });
      },
      openModal: async (trigger_id, view) => {
        await web.views.open({ trigger_id, view });
      },
    },
  });

  const sender: CardSender = {
    post: async (channel, card) => {
      const r = await web.chat.postMessage({ channel, text: card.text, blocks: card.blocks, unfurl_links: false, unfurl_media: false });
      return { channel: r.channel ?? channel, ts: r.ts as string };
    },
    update: async (channel, ts, card) => {
      await web.chat.update({ channel, ts, text: card.text, blocks: card.blocks });
    },
  };

  return {
    name: "slack",
    ...(socketMode ? {} : { mount: { path: SLACK_EVENTS_PATH, router: guardedSlackRouter(config.signingSecret, (receiver as ExpressReceiver).router) } }),
    handlers: slackJobHandlers({ cards, sender, log }),
    async start() {
      // Checks the token once, in the background, and names the workspace in the log.
      homeTeam().then(
        (h) => log.info(`Slack enabled (${socketMode ? "Socket Mode" : `interactivity at ${SLACK_EVENTS_PATH}`})`, { team: h.teamId }),
        (e: Error) => log.error("Slack is configured but auth.test failed; check SLACK_BOT_TOKEN (and SLACK_API_URL)", { error: e.message }),
      );
      if (socketMode) {
        // Socket Mode reconnects on its own; a failed first connection must not stop the API.
        app.start().catch((e: Error) => log.error("Slack Socket Mode could not connect", { error: e.message }));
      }
    },
    async stop() {
      directory.clear();
      if (socketMode) await app.stop().catch(() => {});
    },
  };
}
