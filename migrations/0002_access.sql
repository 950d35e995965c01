CREATE TABLE "deployment" (
	"key" text PRIMARY KEY NOT NULL,
	"id" text NOT NULL,
	"secret" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "events" ADD COLUMN "subject" bigint;--> statement-breakpoint
CREATE INDEX "events_subject" ON "events" USING btree ("subject","log","seq") WHERE "events"."subject" is not null;