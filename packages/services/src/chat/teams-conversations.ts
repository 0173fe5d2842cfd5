import type { Database } from "@countersign/db";

/** Where the Teams bot can post: a stored Bot Framework conversation reference per channel. */
export interface TeamsConversation {
  channelId: string;
  teamId: string | null;
  tenantId: string | null;
  serviceUrl: string;
  /** A botbuilder ConversationReference (JSON). */
  reference: Record<string, unknown>;
  updatedAt: Date;
}

type Row = Awaited<ReturnType<Database["prisma"]["teamsConversation"]["findMany"]>>[number];
const view = (r: Row): TeamsConversation => ({
  channelId: r.channelId,
  teamId: r.teamId,
  tenantId: r.tenantId,
  serviceUrl: r.serviceUrl,
  reference: r.reference as Record<string, unknown>,
  updatedAt: r.updatedAt,
});

/**
 * The Teams bot's conversation references. The bot stores one when it is installed in a
 * team (or sees a channel of that team), and the outbox posts proactively through it.
 */
export function teamsConversations(db: Database) {
  const byTeam = async (teamId: string): Promise<TeamsConversation | null> => {
    const r = await db.prisma.teamsConversation.findFirst({ where: { teamId }, orderBy: { updatedAt: "desc" } });
    return r ? view(r) : null;
  };
  return {
    save: async (c: { channelId: string; teamId: string | null; tenantId: string | null; serviceUrl: string; reference: Record<string, unknown> }) => {
      const data = { teamId: c.teamId, tenantId: c.tenantId, serviceUrl: c.serviceUrl, reference: c.reference as object };
      const r = await db.prisma.teamsConversation.upsert({ where: { channelId: c.channelId }, create: { channelId: c.channelId, ...data }, update: data });
      return view(r);
    },

    find: async (channelId: string): Promise<TeamsConversation | null> => {
      const r = await db.prisma.teamsConversation.findUnique({ where: { channelId } });
      return r ? view(r) : null;
    },

    findByTeam: byTeam,

    /**
     * The reference to post into `channelId` with: the channel's own, else any reference from
     * its team (a bot installed in a team can start a thread in any of its channels).
     */
    resolve: async (channelId: string, teamId?: string | null): Promise<TeamsConversation | null> => {
      const r = await db.prisma.teamsConversation.findUnique({ where: { channelId } });
      if (r) return view(r);
      return teamId ? byTeam(teamId) : null;
    },

    /** Forgets a team (the app was uninstalled or the bot removed); returns how many channels. */
    removeTeam: async (teamId: string): Promise<number> => {
      const r = await db.prisma.teamsConversation.deleteMany({ where: { OR: [{ teamId }, { channelId: teamId }] } });
      return r.count;
    },
  };
}
export type TeamsConversations = ReturnType<typeof teamsConversations>;
