ALTER TABLE "channels" ADD COLUMN "join_key" text;--> statement-breakpoint
ALTER TABLE "channels" ADD COLUMN "member_limit" integer;