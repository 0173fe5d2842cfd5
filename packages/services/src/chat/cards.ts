import type { Database } from "@countersign/db";
import { newId } from "../ids.ts";
import { loadResource, type RequestResource } from "../requests/resource.ts";

export type ChatSurfaceName = "slack" | "teams";

export interface PostedCard {
  id: string;
  requestId: string;
  surface: ChatSurfaceName;
  destination: string;
  channel: string;
  /** Slack: message ts. Teams: activity id. */
  messageId: string | null;
  /** Teams: the thread's conversation id (19:...;messageid=N). */
  conversationId: string | null;
  state: string;
  error: string | null;
}

type CardRow = Awaited<ReturnType<Database["prisma"]["chatMessage"]["findMany"]>>[number];
const view = (r: CardRow): PostedCard => ({
  id: r.id,
  requestId: r.requestId,
  surface: r.surface as ChatSurfaceName,
  destination: r.destination,
  channel: r.channel,
  messageId: r.messageId,
  conversationId: r.conversationId,
  state: r.state,
  error: r.error,
});

/**
 * Card bookkeeping for the chat surfaces' outbox jobs. Keeping these queries here means
 * the Slack and Teams adapters never touch the ORM.
 */
export function chatCards(db: Database) {
  return {
    /** The request as reviewers should see it now (fresh from the database). */
    loadRequest: (requestId: string): Promise<RequestResource | null> => loadResource(db.prisma, requestId),

    find: async (requestId: string, surface: ChatSurfaceName, channel: string): Promise<PostedCard | null> => {
      const r = await db.prisma.chatMessage.findUnique({ where: { requestId_surface_channel: { requestId, surface, channel } } });
      return r ? view(r) : null;
    },

    list: async (requestId: string, surface: ChatSurfaceName): Promise<PostedCard[]> =>
      (await db.prisma.chatMessage.findMany({ where: { requestId, surface }, orderBy: { createdAt: "asc" } })).map(view),

    /** Records a posted card (idempotent per request, surface and channel). */
    recordPosted: async (c: {
      requestId: string;
      surface: ChatSurfaceName;
      destination: string;
      channel: string;
      messageId: string | null;
      conversationId?: string | null;
    }) => {
      const data = { messageId: c.messageId, conversationId: c.conversationId ?? null, state: "posted", error: null };
      const r = await db.prisma.chatMessage.upsert({
        where: { requestId_surface_channel: { requestId: c.requestId, surface: c.surface, channel: c.channel } },
        create: { id: newId("msg"), requestId: c.requestId, surface: c.surface, destination: c.destination, channel: c.channel, ...data },
        update: data,
      });
      return view(r);
    },

    /**
     * Marks a destination as undeliverable (for example a Teams channel the bot was never
     * installed in) so the request resource shows it instead of failing silently.
     */
    recordUndeliverable: async (c: { requestId: string; surface: ChatSurfaceName; destination: string; channel: string; error: string }) => {
      const r = await db.prisma.chatMessage.upsert({
        where: { requestId_surface_channel: { requestId: c.requestId, surface: c.surface, channel: c.channel } },
        create: {
          id: newId("msg"),
          requestId: c.requestId,
          surface: c.surface,
          destination: c.destination,
          channel: c.channel,
          messageId: null,
          state: "undeliverable",
          error: c.error,
        },
        update: { state: "undeliverable", error: c.error },
      });
      return view(r);
    },

    markState: async (id: string, state: string, error: string | null = null) => {
      await db.prisma.chatMessage.update({ where: { id }, data: { state, error } });
    },
  };
}
export type ChatCards = ReturnType<typeof chatCards>;
