CREATE TABLE meta (
	"key" VARCHAR(64) NOT NULL, 
	value TEXT NOT NULL, 
	PRIMARY KEY ("key")
);
CREATE TABLE articles (
	id VARCHAR(255) NOT NULL, 
	source VARCHAR(255) NOT NULL, 
	title TEXT NOT NULL, 
	url TEXT, 
	published DATETIME NOT NULL, 
	updated DATETIME, 
	author TEXT, 
	dek TEXT, 
	summary TEXT, 
	image TEXT, 
	image_alt TEXT, 
	tags TEXT NOT NULL, 
	section TEXT, 
	language VARCHAR(32), 
	body TEXT NOT NULL, 
	origin TEXT, 
	date_is_first_seen BOOLEAN NOT NULL, 
	first_seen DATETIME NOT NULL, 
	content_hash VARCHAR(64) NOT NULL, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_articles_published ON articles (published);
CREATE TABLE sources (
	name VARCHAR(255) NOT NULL, 
	location TEXT, 
	last_success DATETIME, 
	last_error TEXT, 
	last_error_at DATETIME, 
	failures INTEGER NOT NULL, 
	etag TEXT, 
	last_modified TEXT, 
	moved_to TEXT, 
	last_checked DATETIME, 
	last_note TEXT, 
	PRIMARY KEY (name)
);
CREATE TABLE article_keys (
	"key" VARCHAR(64) NOT NULL, 
	article_id VARCHAR(255) NOT NULL, 
	source VARCHAR(255) NOT NULL, 
	PRIMARY KEY ("key")
);
CREATE INDEX ix_article_keys_article_id ON article_keys (article_id);
CREATE INDEX ix_article_keys_source ON article_keys (source);
CREATE TABLE issues (
	"key" VARCHAR(64) NOT NULL, 
	slot DATETIME NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	subject TEXT, 
	preheader TEXT, 
	html TEXT, 
	text TEXT, 
	created_at DATETIME NOT NULL, 
	finished_at DATETIME, 
	note TEXT, 
	PRIMARY KEY ("key")
);
CREATE TABLE subscribers (
	email VARCHAR(320) NOT NULL, 
	name TEXT, 
	status VARCHAR(16) NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (email)
);
CREATE TABLE leases (
	name VARCHAR(128) NOT NULL, 
	owner VARCHAR(255) NOT NULL, 
	acquired_at DATETIME NOT NULL, 
	expires_at DATETIME NOT NULL, 
	PRIMARY KEY (name)
);
CREATE TABLE holds (
	issue_key VARCHAR(64) NOT NULL, 
	created_at DATETIME NOT NULL, 
	note TEXT, 
	PRIMARY KEY (issue_key)
);
CREATE TABLE reviews (
	issue_key VARCHAR(64) NOT NULL, 
	sent_at DATETIME NOT NULL, 
	recipients TEXT NOT NULL, 
	PRIMARY KEY (issue_key)
);
CREATE TABLE issue_articles (
	issue_key VARCHAR(64) NOT NULL, 
	article_id VARCHAR(255) NOT NULL, 
	position INTEGER NOT NULL, 
	PRIMARY KEY (issue_key, article_id), 
	FOREIGN KEY(issue_key) REFERENCES issues ("key")
);
CREATE TABLE deliveries (
	issue_key VARCHAR(64) NOT NULL, 
	email VARCHAR(320) NOT NULL, 
	name TEXT, 
	status VARCHAR(16) NOT NULL, 
	attempts INTEGER NOT NULL, 
	message_id TEXT, 
	detail TEXT, 
	next_attempt DATETIME, 
	updated_at DATETIME NOT NULL, 
	owner VARCHAR(160), 
	claim VARCHAR(40), 
	lease_until DATETIME, 
	interrupted INTEGER NOT NULL, 
	PRIMARY KEY (issue_key, email), 
	FOREIGN KEY(issue_key) REFERENCES issues ("key")
);
CREATE INDEX ix_deliveries_issue_status ON deliveries (issue_key, status, email);
